"""The agent's HTTP client (httpx, sync, no torch): what ``edgekit validate`` uses to reach a device.

Every call follows ``docs/agent-api.md``. A failure of any kind (refused connection, timeout, an HTTP error, a
reply that is not the agent's) becomes one ``AgentError`` with the agent's URL, the HTTP status, the server's
``detail`` and a hint. A busy agent (429) is retried after its ``Retry-After``, a bounded number of times.
"""

from __future__ import annotations

import base64
import io
import os
import ssl
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from ..errors import EdgekitError, InputError
from ..files import regular_file
from ..runtime.ir_bundle import artifact_digest, upload_chunks, upload_size
from .tls import FINGERPRINT_LINE, FingerprintMismatch, pinned_context

TOKEN_ENV = "EDGEKIT_AGENT_TOKEN"
FINGERPRINT_ENV = "EDGEKIT_AGENT_FINGERPRINT"
BUSY_RETRIES = 5
MAX_RETRY_AFTER_S = 30.0
RUN_TIMEOUT_S = 120.0
RUN_MARGIN_S = 30.0  # the HTTP call waits this much longer than the run's own timeout on the agent

_HINTS = {
    400: "the agent could not parse the model: re-export it; the file may be truncated",
    401: "wrong or missing token: pass --token-file with the agent's token file (or set EDGEKIT_AGENT_TOKEN)",
    404: "the agent does not have it: run validate again so the artifact is uploaded",
    413: "the model is over the agent's size cap: start the agent with a larger cap",
    415: "the agent runs only ONNX and TFLite files and OpenVINO IRs (uploaded by edgekit as one bundle)",
    422: "the agent rejected the request: the file changed during the upload, or the request does not fit "
         "its API (are client and agent the same edgekit version?)",
    429: "the agent stayed busy with another run: wait for it to finish and try again",
}


class AgentError(EdgekitError):
    """Talking to an agent failed: unreachable, refused, timed out, or the agent answered with an error."""

    exit_code = 6

    def __init__(self, message: str, hint: str | None = None, *, url: str | None = None,
                 status_code: int | None = None, detail: Any = None):
        super().__init__(message, hint)
        self.url = url
        self.status_code = status_code
        self.detail = detail


class AgentToken(str):
    """A token as read from a token file: the string itself, plus the agent's TLS certificate fingerprint when the
    file has a ``tls-fingerprint:`` line (what ``edgekit agent token`` prints), for ``AgentClient`` to pin."""

    fingerprint: str | None = None

    def __new__(cls, token: str, fingerprint: str | None = None) -> "AgentToken":
        made = super().__new__(cls, token)
        made.fingerprint = fingerprint
        return made


def resolve_token(token: str | None = None, token_file: str | Path | None = None) -> str | None:
    """The token given, else the first line of ``token_file`` (an ``AgentToken`` carrying the file's
    ``tls-fingerprint:`` line, if any), else ``$EDGEKIT_AGENT_TOKEN``, else None."""
    if token:
        return _printable(token, "the token given")
    if token_file is not None:
        path = Path(token_file)
        try:
            regular_file(path, "token file")  # a FIFO would block
            text = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"cannot read the token file {path}: {getattr(exc, 'strerror', None) or exc}",
                             hint="pass the token file the agent created (its --token-file)") from None
        if not text:
            raise InputError(f"the token file {path} is empty", hint="pass the token file the agent created")
        lines = [line.strip() for line in text.splitlines()]
        pins = [line.split(":", 1)[1].strip() for line in lines[1:] if line.lower().startswith(FINGERPRINT_LINE)]
        return AgentToken(_printable(lines[0], f"the token in {path}"), pins[0] if pins else None)
    from_env = os.environ.get(TOKEN_ENV)
    return _printable(from_env, f"${TOKEN_ENV}") if from_env else None


def _printable(token: str, where: str) -> str:
    """A token travels in an HTTP header: printable ASCII without spaces, or an ``InputError`` naming ``where``."""
    if not all("!" <= char <= "~" for char in token):
        raise InputError(f"{where} holds characters a token cannot have (only printable ASCII, no spaces)",
                         hint="copy the token from the agent's token file (`edgekit agent token` prints it)")
    return token


def require_token(token: str | None = None, token_file: str | Path | None = None) -> str:
    """``resolve_token``, or an ``AgentError`` saying how to give one."""
    secret = resolve_token(token, token_file)
    if secret is None:
        raise AgentError("no agent token given", hint="pass --token-file with the agent's token file, or set "
                                                      "EDGEKIT_AGENT_TOKEN")
    return secret


def check_url(url: str) -> str:
    """``url`` without a trailing slash; an ``InputError`` unless it is ``http(s)://HOST[:PORT]``."""
    try:
        parsed = httpx.URL(url) if "://" in url else None
    except httpx.InvalidURL:
        parsed = None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
        raise InputError(f"agent URL '{url}' is not https://HOST:PORT or http://HOST:PORT",
                         hint="pass --agent https://HOST:PORT (an agent off loopback serves HTTPS)")
    return url.rstrip("/")



def encode_npz(arrays: dict[str, np.ndarray]) -> str:
    buffer = io.BytesIO()
    np.savez(buffer, **{name: np.asarray(value) for name, value in arrays.items()})
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def decode_npz(text: str) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(base64.b64decode(text)), allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files}


class AgentClient:
    """One agent at ``url`` (``https://HOST:PORT``, or ``http://`` for one on loopback). ``timeout``: seconds for
    the quick calls; benchmark and inference wait for their own ``timeout_s`` plus a margin.

    ``fingerprint`` (else the token file's ``tls-fingerprint:`` line, else ``$EDGEKIT_AGENT_FINGERPRINT``) pins
    the agent's certificate: the TLS handshake fails, before the token is sent, unless the agent presents exactly
    that certificate. Without one, an ``https://`` agent's certificate must be trusted by the system."""

    def __init__(self, url: str, token: str | None, timeout: float = 30.0, busy_retries: int = BUSY_RETRIES,
                 transport: httpx.BaseTransport | None = None, fingerprint: str | None = None):
        self.url = check_url(url)
        self.timeout = timeout
        self.busy_retries = busy_retries
        self.fingerprint = fingerprint or getattr(token, "fingerprint", None) or os.environ.get(FINGERPRINT_ENV)
        verify: Any = True
        if self.fingerprint and self.url.startswith("https://"):
            verify = pinned_context(self.fingerprint)
        elif fingerprint and self.url.startswith("http://"):
            raise InputError(f"a certificate fingerprint was given for {self.url}, which is plain HTTP",
                             hint=f"use {self.url.replace('http://', 'https://', 1)}")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=self.url, headers=headers, verify=verify,
                                  timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)), transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "AgentClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- endpoints ---------------------------------------------------------------------------------------

    def health(self) -> dict:
        try:
            reply = self._json("GET", "/v1/health")
        except AgentError as error:
            if error.status_code is None:
                raise
            error.hint = f"{self.url} answers HTTP but is not an edgekit agent: check the host and port"
            raise
        if not isinstance(reply, dict) or reply.get("agent") != "edgekit":
            raise AgentError(f"{self.url} answered /v1/health but is not an edgekit agent",
                             hint="check the host and port of `edgekit agent serve`", url=self.url)
        return reply

    def info(self) -> dict:
        return self._json("GET", "/v1/info")

    def has(self, digest: str) -> bool:
        return self._request("HEAD", f"/v1/artifacts/{digest}", ok=(200, 404)).status_code == 200

    def metadata(self, digest: str) -> dict:
        return self._json("GET", f"/v1/artifacts/{digest}")

    def upload(self, path: str | Path) -> dict:
        """Store ``path`` on the agent unless it is there already; the agent's metadata plus ``uploaded``.
        An OpenVINO IR's ``.xml`` travels with its ``.bin`` as one bundle (``runtime.ir_bundle``)."""
        path = Path(path)
        digest = artifact_digest(path)
        if self.has(digest):
            return {**self.metadata(digest), "uploaded": False}
        size = upload_size(path)
        reply = self._json("PUT", f"/v1/artifacts/{digest}", content=lambda: upload_chunks(path),
                           headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
                           timeout=max(self.timeout, 60.0 + size / 1e6))
        return {**reply, "uploaded": True}

    def list(self) -> list[dict]:
        return self._json("GET", "/v1/artifacts")["artifacts"]

    def delete(self, digest: str) -> None:
        self._request("DELETE", f"/v1/artifacts/{digest}", ok=(204,))

    def benchmark(self, digest: str, *, threads: int = 1, warmup: int = 10, runs: int = 50,
                  min_seconds: float = 0.0, runner_options: dict | None = None, inputs: dict | None = None,
                  arrays: dict[str, np.ndarray] | None = None, timeout_s: float = RUN_TIMEOUT_S) -> dict:
        """The agent's ``BenchmarkResult``: ``status`` ok/runtime_crashed/timeout/error, ``latency``, conditions.

        ``inputs``: ``{name: {"shape", "dtype"}}`` for random data; ``arrays``: real inputs (first sample used).
        A run that did not succeed is returned, not raised: its status is a finding about the artifact."""
        body = {"digest": digest, "threads": threads, "warmup": warmup, "runs": runs, "min_seconds": min_seconds,
                "timeout_s": timeout_s, "runner_options": runner_options or {}, "inputs": inputs,
                "inputs_npz_b64": encode_npz(arrays) if arrays is not None else None}
        return self._json("POST", "/v1/benchmark", json=body, timeout=timeout_s + RUN_MARGIN_S)

    def infer_raw(self, digest: str, arrays: dict[str, np.ndarray], *, threads: int = 1,
                  runner_options: dict | None = None, timeout_s: float = RUN_TIMEOUT_S) -> dict:
        """The agent's ``InferResult`` as it is (status not checked, outputs still encoded)."""
        body = {"digest": digest, "threads": threads, "timeout_s": timeout_s, "runner_options": runner_options or {},
                "inputs_npz_b64": encode_npz(arrays)}
        return self._json("POST", "/v1/infer", json=body, timeout=timeout_s + RUN_MARGIN_S)

    def infer(self, digest: str, arrays: dict[str, np.ndarray], *, threads: int = 1,
              runner_options: dict | None = None, timeout_s: float = RUN_TIMEOUT_S) -> list[np.ndarray]:
        """Run every sample (first axis) at batch 1 on the device; each output stacked over samples.
        A status other than ``ok`` raises ``AgentError`` naming it (and the signal, for a crash)."""
        reply = self.infer_raw(digest, arrays, threads=threads, runner_options=runner_options, timeout_s=timeout_s)
        if reply.get("status") != "ok":
            raise run_failure(self.url, "inference", reply, timeout_s)
        return outputs_of(reply)

    # -- plumbing ----------------------------------------------------------------------------------------

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._request(method, path, **kwargs)
        try:
            return response.json()
        except ValueError as exc:
            raise AgentError(f"{self.url}: {method} {path} did not answer JSON (HTTP {response.status_code}): "
                             f"{_first_line(response.text)[:120]!r}", hint=f"is {self.url} an edgekit agent? Check "
                             "the host and port of `edgekit agent serve`", url=self.url,
                             status_code=response.status_code) from exc

    def _request(self, method: str, path: str, *, ok: tuple[int, ...] = (200, 201), timeout: float | None = None,
                 **kwargs: Any) -> httpx.Response:
        content = kwargs.pop("content", None)
        for attempt in range(self.busy_retries + 1):
            try:  # a callable content is a fresh stream per attempt
                response = self._http.request(method, path, timeout=timeout or httpx.USE_CLIENT_DEFAULT,
                                              content=content() if callable(content) else content, **kwargs)
            except httpx.HTTPError as exc:
                tls = tls_failure(exc, self.url, self.fingerprint)
                if tls is not None:
                    raise tls from exc
                raise transport_error(exc, AgentError, what="the agent", url=self.url, method=method, path=path,
                                      server=f"`edgekit agent serve` running at {self.url}",
                                      machine="device") from exc
            if response.status_code == 429 and attempt < self.busy_retries:
                time.sleep(_retry_after(response))
                continue
            if response.status_code not in ok:
                raise self._http_error(method, path, response)
            return response
        raise AssertionError("unreachable")  # the last attempt either returns or raises

    def _http_error(self, method: str, path: str, response: httpx.Response) -> AgentError:
        detail = _detail(response)
        code = response.status_code
        hint = _HINTS.get(code) or ("the agent failed: see its log" if code >= 500 else
                                    "check the agent's URL and that client and agent speak the same API version")
        text = f": {detail}" if detail else ""
        retried = f" (busy after {self.busy_retries} retries)" if code == 429 else ""
        return AgentError(f"agent {self.url}: {method} {path} → HTTP {code}{retried}{text}", hint=hint,
                          url=self.url, status_code=code, detail=detail)


def tls_failure(exc: httpx.HTTPError, url: str, fingerprint: str | None) -> "AgentError | None":
    """The error for a TLS handshake that failed on the certificate (pin mismatch or an untrusted one), or None."""
    cause = exc.__cause__ or exc.__context__
    while cause is not None and not isinstance(cause, ssl.SSLError):
        cause = cause.__cause__ or cause.__context__
    if isinstance(cause, FingerprintMismatch):
        return AgentError(f"agent {url}: {cause.args[0]}; nothing was sent",
                          hint="if the agent's certificate was renewed, copy the new token file (`edgekit agent "
                               "token` on the device); otherwise something else answers at this address", url=url)
    if isinstance(cause, ssl.SSLCertVerificationError) and not fingerprint:
        return AgentError(f"agent {url}: its TLS certificate is not trusted by this machine ({cause.verify_message})",
                          hint="an agent's own certificate is pinned, not trusted: use the token file that `edgekit "
                               "agent token` prints on the device (it has a tls-fingerprint line), or set "
                               f"{FINGERPRINT_ENV}", url=url)
    return None


def outputs_of(reply: dict) -> list[np.ndarray]:
    """The outputs of an ``InferResult`` in order (``output_0``, ``output_1``, …)."""
    arrays = decode_npz(reply["outputs_npz_b64"])
    return [arrays[f"output_{i}"] for i in range(len(arrays))]


def run_failure(url: str, what: str, reply: dict, timeout_s: float) -> AgentError:
    """The error for a benchmark or inference whose status is not ``ok``."""
    status = reply.get("status")
    if status == "runtime_crashed":
        signal = reply.get("signal") or "a signal"
        return AgentError(f"agent {url}: the runtime crashed ({signal}) during {what}",
                          hint="the model crashes this device's runtime: try another precision or runtime version",
                          url=url, detail=reply.get("error"))
    if status == "timeout":
        return AgentError(f"agent {url}: {what} timed out after {timeout_s:g} s",
                          hint="raise --timeout, or lower --runs/--min-seconds", url=url)
    error = reply.get("error") or "no error message"
    return AgentError(f"agent {url}: {what} failed ({status}): {_first_line(error)}",
                      hint="the device could not run the model: check that its runtime supports every op",
                      url=url, detail=error)


def _retry_after(response: httpx.Response) -> float:
    try:
        seconds = float(response.headers.get("Retry-After", "1"))
    except ValueError:
        seconds = 1.0
    return min(max(seconds, 0.1), MAX_RETRY_AFTER_S)


def _detail(response: httpx.Response) -> Any:
    try:
        body = response.json()
    except ValueError:
        return _first_line(response.text)[:300] or None
    if isinstance(body, dict) and "detail" in body:
        detail = body["detail"]
        if isinstance(detail, list):  # FastAPI's validation errors
            return "; ".join(f"{'.'.join(str(p) for p in d.get('loc', []))}: {d.get('msg')}" for d in detail
                             if isinstance(d, dict)) or detail
        return detail
    return body


def transport_error(exc: httpx.HTTPError, error_type: type, *, what: str, url: str, method: str, path: str,
                    server: str, machine: str, extra_hint: str = "") -> Exception:
    """One readable error for an HTTP exchange that got no answer: refused, timed out, or broken on the way."""
    if isinstance(exc, httpx.ConnectError):
        return error_type(f"cannot connect to {what} at {url}: {_reason(exc)}",
                          hint=f"is {server}? Check host, port and firewall{extra_hint}", url=url)
    if isinstance(exc, httpx.TimeoutException):
        return error_type(f"{what} at {url} did not answer {method} {path} in time ({type(exc).__name__})",
                          hint=f"check that the {machine} is up and not overloaded", url=url)
    return error_type(f"{method} {url}{path} failed: {_reason(exc)}", hint=f"is {server}?", url=url)


def _reason(exc: Exception) -> str:
    text = str(exc).strip()
    return _first_line(text) if text else type(exc).__name__


def _first_line(text: str) -> str:
    lines = str(text).strip().splitlines()
    return lines[0] if lines else ""
