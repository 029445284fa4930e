"""A small client of the Open Inference Protocol (KServe v2 REST): the wire format and the HTTP plumbing.

Tensors go as JSON (``encode_request``/``decode_outputs``); errors come back as ``CloudError`` with the server's
own detail and a hint. What is measured, and how, lives in ``kserve.py``.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import numpy as np

from ...agent.client import transport_error
from .base import CloudError

V2_TYPES = {"FP32": "float32", "FP16": "float16", "FP64": "float64", "INT64": "int64", "INT32": "int32",
            "INT16": "int16", "INT8": "int8", "UINT8": "uint8", "BOOL": "bool"}
NUMPY_TO_V2 = {v: k for k, v in V2_TYPES.items()}
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


def encode_request(feeds: dict[str, np.ndarray]) -> bytes:
    tensors = [{"name": name, "shape": list(array.shape), "datatype": NUMPY_TO_V2.get(array.dtype.name, "FP32"),
                "data": array.ravel().tolist()} for name, array in feeds.items()]
    return json.dumps({"inputs": tensors}).encode()


def decode_outputs(reply: dict, names: list[str]) -> list[np.ndarray]:
    """The reply's output tensors as arrays, in the order of ``names`` where the server uses those names, else in
    the order it sent them."""
    tensors = reply["outputs"]
    by_name = {t["name"]: t for t in tensors}
    if names and all(n in by_name for n in names):
        tensors = [by_name[n] for n in names]
    arrays = []
    for tensor in tensors:
        if "data" not in tensor:
            raise ValueError(f"output '{tensor.get('name')}' has no JSON 'data' (binary tensor extension?)")
        dtype = V2_TYPES.get(tensor.get("datatype"), "float32")
        array = np.asarray(tensor["data"], dtype=dtype).reshape(tensor["shape"])
        arrays.append(array.astype(np.float32) if array.dtype.kind == "f" else array)
    return arrays


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

    def infer(self, model_path: str, body: bytes) -> dict:
        path = f"{model_path}/infer"
        response = self.request("POST", path, content=body, headers={"Content-Type": "application/json"},
                                timeout=RUN_TIMEOUT_S)
        return self.json(response, "POST", path)

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
