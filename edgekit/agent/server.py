"""The agent's HTTP API (FastAPI): authenticated, size-bounded, one model run at a time, each in a child.

See docs/agent-api.md. ``create_app`` builds the app; ``serve`` runs it with uvicorn.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import errno
import gc
import hashlib
import io
import socket
import sys
import tempfile
import threading
import zipfile
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from fastapi import Depends, FastAPI, HTTPException, Request, Response
from fastapi import Path as PathParam
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from .._version import __version__
from ..errors import InputError
from .auth import AgentSetupError, token_matches
from .conditions import conditions, device_info
from .connections import ConnectionLimits, defer_accept, raise_open_file_limit
from .gate import BodyCaps, RequestGate
from .isolation import JobOutcome, run_job
from .kserve_v2 import install_kserve_v2
from .openapi import PUT_BODY, add_schemas, errors
from .problems import install_problem_handlers
from .sessions import SessionPool
from .store import ArtifactStore, UnsupportedModel, sniff_format
from .tls import TlsFiles, is_loopback
from .worker import TEST_HOOKS_ENV

DIGEST_PATTERN = r"^[0-9a-f]{64}$"
CHUNK = 1 << 20


@dataclass(frozen=True)
class AgentLimits:
    max_upload_bytes: int = 512 * 1024 * 1024
    max_request_bytes: int = 64 * 1024 * 1024
    memory_limit_mb: int | None = 4096
    max_timeout_s: float = 600.0
    check_timeout_s: float = 60.0
    queue_size: int = 2


def _hide_test_fault(schema: dict) -> None:
    schema["properties"].pop("test_fault", None)


class RunnerOptions(BaseModel):
    # strict: JSON true/"5"/1.0 are not integers; test_fault works only with --test-hooks, so it is not advertised
    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra=_hide_test_fault)
    input_names: list[str] | None = Field(None, max_length=256)
    channels_last_inputs: bool = False
    inference_precision: Literal["f32", "bf16", "f16"] | None = None  # OpenVINO's execution precision hint
    test_fault: Literal["segv", "abort", "hang", "memory"] | None = None


class InputShape(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    shape: list[int] = Field(max_length=8)
    dtype: Literal["float32", "float16", "int64", "int32", "int8", "uint8", "bool"] = "float32"


class BenchmarkRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    digest: str = Field(pattern=DIGEST_PATTERN)
    threads: int = Field(1, ge=1, le=64)
    warmup: int = Field(10, ge=0, le=10_000)
    runs: int = Field(50, ge=1, le=100_000)
    min_seconds: float = Field(0.0, ge=0.0, le=300.0)
    timeout_s: float = Field(120.0, gt=0.0, le=3600.0)
    runner_options: RunnerOptions = RunnerOptions()
    inputs: dict[str, InputShape] | None = Field(None, max_length=64)
    inputs_npz_b64: str | None = None


class InferRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    digest: str = Field(pattern=DIGEST_PATTERN)
    threads: int = Field(1, ge=1, le=64)
    timeout_s: float = Field(120.0, gt=0.0, le=3600.0)
    runner_options: RunnerOptions = RunnerOptions()
    inputs_npz_b64: str


class RunResult(BaseModel):
    status: Literal["ok", "error", "runtime_crashed", "timeout"]
    signal: str | None = None
    error: str | None = None
    wall_s: float


class BenchmarkResult(RunResult):
    latency: dict[str, Any] | None = None
    execution: dict[str, Any] | None = None  # what the runtime compiled, where it tells (OpenVINO)
    conditions_before: dict[str, Any]
    conditions_after: dict[str, Any]


class InferResult(RunResult):
    outputs_npz_b64: str | None = None
    output_names: list[str] | None = None


class ArtifactMeta(BaseModel):
    digest: str
    format: str  # a registered runtime's format (runtime/registry.py)
    size_bytes: int
    stored_at: str
    created: bool | None = None


class ModelRuns:
    """One model run at a time; at most ``queue_size`` requests wait, the rest get 429."""

    def __init__(self, limits: AgentLimits, test_hooks: bool):
        self.limits = limits
        self.env = {TEST_HOOKS_ENV: "1" if test_hooks else "0"}
        self._run = threading.Lock()
        self._slots = threading.BoundedSemaphore(limits.queue_size + 1)

    @contextmanager
    def slot(self, wait_s: float | None = None):
        """Wait for the single model-run slot, or answer 429 when too many requests already wait (or, with
        ``wait_s``, when the slot is not free within that many seconds)."""
        if not self._slots.acquire(blocking=False):
            raise HTTPException(429, "the agent is busy with other model runs", headers={"Retry-After": "5"})
        try:
            if not self._run.acquire(timeout=-1 if wait_s is None else wait_s):
                raise HTTPException(429, f"the model was busy for the request's whole timeout ({wait_s:g} s)",
                                    headers={"Retry-After": "1"})
            try:
                yield
            finally:
                self._run.release()
        finally:
            self._slots.release()

    def __call__(self, job: dict, timeout_s: float) -> JobOutcome:
        with self.slot():
            return run_job(job, min(timeout_s, self.limits.max_timeout_s), self.limits.memory_limit_mb, self.env)


def create_app(store_dir: Path, token: str | None, limits: AgentLimits = AgentLimits(),
               test_hooks: bool = False, announce: str | None = None) -> RequestGate:
    """The agent app behind its ``RequestGate`` (token from the headers, then the body within its cap).
    ``token=None`` disables auth (refused by ``serve`` unless bound to loopback)."""
    store = ArtifactStore(store_dir)
    runs = ModelRuns(limits, test_hooks)
    sessions = SessionPool(limits.memory_limit_mb)
    bearer = HTTPBearer(auto_error=False)

    def authenticated(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        if token is not None and not token_matches(credentials.credentials if credentials else None, token):
            raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        if announce:
            print(announce, file=sys.stderr, flush=True)
        yield
        sessions.close()
        store.close()

    app = FastAPI(title="edgekit agent", version=__version__, docs_url=None, redoc_url=None, openapi_url=None,
                  lifespan=lifespan)
    install_problem_handlers(app)
    auth = [Depends(authenticated)]

    @app.get("/v1/health")
    def health() -> dict:
        return {"status": "ok", "agent": "edgekit", "version": __version__}

    @app.get("/v1/openapi.json", dependencies=auth, include_in_schema=False)
    def openapi() -> dict:
        return app.openapi()

    @app.get("/v1/info", dependencies=auth, responses=errors(401))
    def info() -> dict:
        return {**device_info(), "store": store.report()}

    @app.get("/v1/artifacts", dependencies=auth, responses=errors(401))
    def list_artifacts() -> dict:
        return {"artifacts": store.list()}

    @app.head("/v1/artifacts/{digest}", dependencies=auth, responses=errors(401, 404, 422))
    @app.get("/v1/artifacts/{digest}", dependencies=auth, response_model=ArtifactMeta,
             responses=errors(401, 404, 422))
    def get_artifact(digest: str = PathParam(pattern=DIGEST_PATTERN)) -> dict:
        meta = store.meta(digest)
        if meta is None:
            raise HTTPException(404, f"no artifact {digest}")
        return meta

    @app.delete("/v1/artifacts/{digest}", dependencies=auth, status_code=204, responses=errors(401, 404, 422))
    def delete_artifact(digest: str = PathParam(pattern=DIGEST_PATTERN)) -> Response:
        sessions.drop(digest)
        if not store.delete(digest):
            raise HTTPException(404, f"no artifact {digest}")
        return Response(status_code=204)

    @app.put("/v1/artifacts/{digest}", dependencies=auth, response_model=ArtifactMeta, status_code=201,
             responses={200: {"model": ArtifactMeta}, **errors(400, 401, 413, 415, 422, 429)},
             openapi_extra=PUT_BODY)
    async def put_artifact(request: Request, response: Response,
                           digest: str = PathParam(pattern=DIGEST_PATTERN)) -> dict:
        handle = await run_in_threadpool(store.incoming)
        path = Path(handle.name)
        try:
            hasher, size, head = hashlib.sha256(), 0, b""
            async for chunk in request.stream():
                size += len(chunk)
                if size > limits.max_upload_bytes:
                    raise HTTPException(413, f"upload over the {limits.max_upload_bytes} byte limit")
                hasher.update(chunk)
                head = (head + chunk)[:16] if len(head) < 16 else head
                await run_in_threadpool(handle.write, chunk)
            handle.close()
            if hasher.hexdigest() != digest:
                raise HTTPException(422, f"sha256 of the body is {hasher.hexdigest()}, not {digest}")
            existing = store.meta(digest)
            if existing is not None:
                response.status_code = 200
                return {**existing, "created": False}
            try:
                fmt = sniff_format(head)
            except UnsupportedModel as exc:
                raise HTTPException(415, f"not a model this agent runs: {exc}") from None
            path = path.rename(path.with_suffix(f".{fmt}"))
            outcome = await run_in_threadpool(runs, {"kind": "check", "model": str(path)}, limits.check_timeout_s)
            if outcome.status != "ok":
                reason = (outcome.error or outcome.status).replace(str(path), "the upload")
                raise HTTPException(400, f"the {fmt} model does not load: {reason}")
            return {**await run_in_threadpool(store.commit, path, digest, fmt, size), "created": True}
        finally:
            handle.close()
            path.unlink(missing_ok=True)

    @app.post("/v1/benchmark", dependencies=auth, response_model=BenchmarkResult,
              responses=errors(400, 401, 404, 411, 413, 422, 429))
    def benchmark(request: BenchmarkRequest) -> dict:
        model = _model_or_404(store, request.digest)
        with tempfile.TemporaryDirectory(prefix="edgekit-bench-") as scratch:
            job = {"kind": "benchmark", "model": str(model), "threads": request.threads, "warmup": request.warmup,
                   "runs": request.runs, "min_seconds": request.min_seconds,
                   "runner_options": request.runner_options.model_dump(),
                   "inputs": {k: v.model_dump() for k, v in (request.inputs or {}).items()} or None}
            if request.inputs_npz_b64 is not None:
                job["inputs_npz"] = _write_npz(request.inputs_npz_b64, Path(scratch) / "inputs.npz")
            before = conditions()
            outcome = runs(job, request.timeout_s)
            return {**_run_fields(outcome), "latency": outcome.result.get("latency"),
                    "execution": outcome.result.get("execution"),
                    "conditions_before": before, "conditions_after": conditions()}

    @app.post("/v1/infer", dependencies=auth, response_model=InferResult,
              responses=errors(400, 401, 404, 411, 413, 422, 429))
    def infer(request: InferRequest) -> dict:
        model = _model_or_404(store, request.digest)
        with tempfile.TemporaryDirectory(prefix="edgekit-infer-") as scratch:
            outputs = Path(scratch) / "outputs.npz"
            job = {"kind": "infer", "model": str(model), "threads": request.threads,
                   "runner_options": request.runner_options.model_dump(),
                   "inputs_npz": _write_npz(request.inputs_npz_b64, Path(scratch) / "inputs.npz"),
                   "outputs_npz": str(outputs)}
            outcome = runs(job, request.timeout_s)
            encoded = base64.b64encode(outputs.read_bytes()).decode() if outcome.status == "ok" else None
            return {**_run_fields(outcome), "outputs_npz_b64": encoded,
                    "output_names": outcome.result.get("output_names")}

    add_schemas(app, install_kserve_v2(app, store, runs, sessions, auth))
    return RequestGate(app, token, BodyCaps(upload_bytes=limits.max_upload_bytes,
                                            request_bytes=limits.max_request_bytes))


def _model_or_404(store: ArtifactStore, digest: str) -> Path:
    path = store.model_path(digest)
    if path is None or store.meta(digest) is None:
        raise HTTPException(404, f"no artifact {digest}; upload it first")
    return path


def _write_npz(encoded: str, path: Path) -> str:
    try:
        raw = base64.b64decode(encoded, validate=True)
        loaded = np.load(io.BytesIO(raw), allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise ValueError("a single array (.npy), not an .npz")
        with loaded as npz:
            if not npz.files:
                raise ValueError("no arrays")
    except (binascii.Error, ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise HTTPException(422, f"inputs_npz_b64 is not a base64 .npz of arrays: {exc}") from None
    path.write_bytes(raw)
    return str(path)


def _run_fields(outcome: JobOutcome) -> dict:
    return {"status": outcome.status, "signal": outcome.signal, "error": outcome.error,
            "wall_s": round(outcome.wall_s, 3)}


def check_bind(host: str, with_token: bool) -> None:
    """Refuse a non-loopback address without a token (bad input, before anything is bound or created)."""
    if not with_token and not is_loopback(host):
        raise InputError(f"refusing to listen on {host} without a token", hint="drop --no-token, or bind 127.0.0.1")


def bind_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port``, or an ``AgentSetupError`` that says why not and what to do."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as exc:
        raise AgentSetupError(f"cannot resolve --host {host}: {exc.strerror}",
                              hint="pass an address of this machine (127.0.0.1, 0.0.0.0, ::) or a name it "
                                   "resolves") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        hints = {errno.EADDRINUSE: f"another process listens on port {port}: stop it (`ss -ltnp 'sport = :{port}'` "
                                   "names it) or pass --port with a free port",
                 errno.EADDRNOTAVAIL: f"{host} is not an address of this machine: pass one of its own, or 0.0.0.0",
                 errno.EACCES: "ports below 1024 need root: pass --port 1024 or above"}
        raise AgentSetupError(f"cannot listen on {host}:{port}: {exc.strerror}",
                              hint=hints.get(exc.errno, "check --host and --port")) from None
    return sock


def serve(sock: socket.socket, store_dir: Path, token: str | None, limits: AgentLimits = AgentLimits(),
          test_hooks: bool = False, connections: ConnectionLimits = ConnectionLimits(),
          tls: TlsFiles | None = None) -> None:
    """Run the agent on an already bound socket (``bind_socket``) until a signal stops it; HTTPS with ``tls``."""
    import uvicorn

    host, port = sock.getsockname()[:2]
    scheme = "https" if tls else "http"
    pinned = f" (TLS certificate {tls.fingerprint})" if tls else ""
    app = create_app(store_dir, token, limits, test_hooks, announce=f"edgekit agent listening on {scheme}://"
                                                                    f"{f'[{host}]' if ':' in host else host}:{port}"
                                                                    f"{pinned}")
    raise_open_file_limit()
    defer_accept(sock, connections)
    certificate = {"ssl_certfile": str(tls.cert), "ssl_keyfile": str(tls.key)} if tls else {}
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=5,
                                           **certificate, **connections.uvicorn_settings()))
    gc.collect()
    gc.freeze()  # the start-up heap (~60,000 objects) is left out of every later collection: shorter pauses
    with asyncio.Runner(loop_factory=connections.loop_class()) as runner:  # what server.run does, on our loop
        runner.run(server.serve(sockets=[sock]))
