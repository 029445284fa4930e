"""A small client of the Open Inference Protocol (KServe v2 REST): requests, replies and the HTTP plumbing.

Tensors go as JSON ``data`` or with the binary tensor extension (``encode_request``/``decode_outputs``, on the wire
format of ``agent/v2_wire.py`` that the agent shares); errors come back as ``CloudError`` with the server's own
detail and a hint. What is measured, and how, lives in ``kserve.py``.
"""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np

from ...agent.client import transport_error
from ...agent.v2_wire import HEADER_LENGTH, NUMPY_TO_V2, dump_body, encode_tensors, load_json, read_tensors, split_body
from .base import CloudError

BINARY_EXTENSION = "binary_tensor_data"  # what a server lists in GET /v2 "extensions" when it reads binary tensors
RUN_TIMEOUT_S = 120.0
OK_ANY = tuple(range(200, 600))


def check_cloud_url(url: str) -> str:
    """``url`` without a trailing slash; a ``CloudError`` unless it is ``http(s)://HOST[:PORT][/prefix]``."""
    from ...errors import InputError

    try:
        parsed = httpx.URL(url) if "://" in url else None
    except httpx.InvalidURL:
        parsed = None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
        raise InputError(f"--cloud '{url}' is neither 'local' nor an http(s)://HOST:PORT URL",
                         hint="pass --cloud local, or the base URL of a KServe v2 server (http://HOST:PORT)")
    return url.rstrip("/")


def describe_inputs(inputs: list[dict]) -> str:
    """``x: FP32[1,3,224,224], ids: INT64[-1,128]`` for metadata or manifest inputs."""
    parts = []
    for spec in inputs:
        datatype = spec.get("datatype") or NUMPY_TO_V2.get(str(spec.get("dtype")), str(spec.get("dtype")))
        dims = ",".join(str(d) for d in spec.get("shape", []))
        parts.append(f"{spec.get('name')}: {datatype}[{dims}]")
    return ", ".join(parts) or "(none)"


def input_mismatches(server_inputs: list[dict], artifact_inputs: list[dict]) -> list[str]:
    """What differs between the server's declared inputs and the artifact's (empty: they fit)."""
    server = {i.get("name"): i for i in server_inputs}
    problems = []
    for spec in artifact_inputs:
        name = spec["name"]
        if name not in server:
            problems.append(f"no input '{name}'")
            continue
        theirs = server[name]
        wanted = NUMPY_TO_V2.get(spec["dtype"], spec["dtype"])
        if str(theirs.get("datatype")) != wanted:
            problems.append(f"'{name}' is {theirs.get('datatype')}, not {wanted}")
        shape = list(theirs.get("shape") or [])
        if len(shape) != len(spec["shape"]) or any(
                isinstance(ours, int) and isinstance(dim, int) and dim >= 0 and dim != ours
                for dim, ours in zip(shape, spec["shape"])):
            problems.append(f"'{name}' has shape {shape}, not {list(spec['shape'])}")
    extra = sorted(set(server) - {s["name"] for s in artifact_inputs})
    if extra:
        problems.append(f"extra inputs {extra}")
    return problems


def encode_request(feeds: dict[str, np.ndarray], binary: bool) -> tuple[bytes, dict[str, str]]:
    """The body and headers of an inference request; ``binary``: tensors as raw bytes, and binary outputs asked
    for (``parameters.binary_data_output``)."""
    entries, chunks = encode_tensors([(name, array, binary) for name, array in feeds.items()])
    body, length = dump_body({"inputs": entries, **({"parameters": {"binary_data_output": True}} if binary else {})},
                             chunks)
    if length is None:
        return body, {"Content-Type": "application/json"}
    return body, {"Content-Type": "application/octet-stream", HEADER_LENGTH: str(length)}


def decode_outputs(reply: dict, binary: bytes, names: list[str]) -> list[np.ndarray]:
    """The reply's output tensors (JSON ``data`` or binary) as arrays, in the order of ``names`` where the server
    uses those names, else in the order it sent them; floats as float32, like this host's runners."""
    tensors = reply["outputs"]
    arrays = read_tensors(tensors, binary, "output")
    by_name = {t.get("name"): a for t, a in zip(tensors, arrays)}
    if names and all(n in by_name for n in names):
        arrays = [by_name[n] for n in names]
    return [a.astype(np.float32) if a.dtype.kind == "f" else a for a in arrays]


class V2Client:
    """HTTP to one KServe v2 server: every request checked for transport errors and unexpected status codes."""

    def __init__(self, url: str, token: str | None = None, timeout: float = 30.0):
        self.url = check_cloud_url(url)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=self.url, headers=headers,
                                  timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)))

    def close(self) -> None:
        self._http.close()

    def model_metadata(self, model_path: str) -> dict | None:
        """``GET /v2/models/{name}``; None when the server has no such model."""
        response = self.request("GET", model_path, ok=(200, 404))
        return None if response.status_code == 404 else self.json(response, "GET", model_path)

    def infer(self, model_path: str, body: bytes, headers: dict[str, str]) -> tuple[dict, bytes, int]:
        """``POST {model_path}/infer``: the reply's JSON, its binary tail (empty for an all-JSON reply) and its
        size in bytes."""
        path = f"{model_path}/infer"
        response = self.request("POST", path, content=body, headers=headers, timeout=RUN_TIMEOUT_S)
        if response.headers.get(HEADER_LENGTH) is None:
            return self.json(response, "POST", path), b"", len(response.content)
        try:
            header, binary = split_body(response.content, response.headers[HEADER_LENGTH])
            reply = load_json(header, "reply's JSON header")
        except ValueError as exc:
            reply, binary = str(exc), b""
        if not isinstance(reply, dict):
            raise CloudError(f"cloud endpoint {self.url}: POST {path} answered a binary-tensor reply without a JSON "
                             f"object header: {str(reply)[:120]}", hint=f"is {self.url} a KServe v2 server?",
                             url=self.url, status_code=response.status_code)
        return reply, binary, len(response.content)

    def server_metadata(self) -> dict:
        """``GET /v2``: name, version, extensions (empty where the server does not answer it)."""
        return self.optional_json("/v2") or {}

    def optional_json(self, path: str) -> dict | None:
        """A JSON object from ``GET path``, or None for any other answer (the route is optional)."""
        response = self.request("GET", path, ok=OK_ANY)
        try:
            body = response.json() if response.status_code == 200 else None
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    def request(self, method: str, path: str, *, ok: tuple[int, ...] = (200,), timeout: float | None = None,
                 **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, timeout=timeout or httpx.USE_CLIENT_DEFAULT, **kwargs)
        except httpx.HTTPError as exc:
            raise transport_error(exc, CloudError, what="the cloud endpoint", url=self.url, method=method, path=path,
                                  server=f"a KServe v2 server running at {self.url}", machine="server",
                                  extra_hint=" (or pass --cloud local)") from exc
        if response.status_code not in ok:
            code = response.status_code
            hint = ("wrong or missing token: pass --cloud-token-file with the server's bearer token"
                    if code in (401, 403) else "the server rejected the request: see its log" if code < 500
                    else "the server failed: see its log")
            raise CloudError(f"cloud endpoint {self.url}: {method} {path} → HTTP {code}{detail_text(response)}",
                             hint=hint, url=self.url, status_code=code)
        return response

    def json(self, response: httpx.Response, method: str, path: str) -> dict:
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise CloudError(f"cloud endpoint {self.url}: {method} {path} did not answer a JSON object "
                             f"(HTTP {response.status_code}): {response.text.strip()[:120]!r}",
                             hint=f"is {self.url} a KServe v2 (Open Inference Protocol) server?", url=self.url,
                             status_code=response.status_code)
        return body


def detail_text(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip().splitlines()
        return f": {text[0][:200]}" if text else ""
    if isinstance(body, dict):
        detail = body.get("detail") or body.get("error")
        if detail:
            return f": {detail}"
    return ""
