"""The Open Inference Protocol (KServe v2 REST) for stored artifacts: model name = artifact digest, version "1".

So an agent on a GPU server (or any host) can be the cloud baseline of ``edgekit compare``, and any v2 client
(tritonclient, KServe's client, curl) can use the agent. The core routes (server live/ready/metadata, model
ready/metadata/infer, with or without ``/versions/1``) and the binary tensor extension (``v2_wire``). Inference runs
in a long-lived, crash-isolated session per model; the measured compute time is returned in ``parameters``.

An inference body is read as JSON whatever its Content-Type says (tritonclient sends none), gzip/deflate
Content-Encoding included. Documented request parameters that change nothing here (``sequence_*``, ``priority``,
``headers``, a tensor's ``content_type``, …) are accepted and ignored; ones this server cannot honour
(``classification``, shared-memory regions) are refused with 400.
"""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np
from fastapi import Depends, FastAPI, HTTPException, Request, Response
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt
from starlette.concurrency import run_in_threadpool

from .._version import __version__
from ..runtime.registry import runtime
from .openapi import errors, json_body
from .problems import validate_body
from .sessions import SessionError
from .v2_wire import (
    HEADER_LENGTH,
    NUMPY_TO_V2,
    WireError,
    dump_body,
    encode_tensors,
    load_json,
    read_tensors,
    split_body,
)

DIGEST_PATTERN = r"^[0-9a-f]{64}$"
V2_TIMEOUT_S = 60.0  # one v2 request may hold the run slot this long before its session is killed
EXTENSIONS = ["binary_tensor_data"]
UNSUPPORTED_PARAMETERS = {"classification": "the classification extension",
                          "shared_memory_region": "the shared-memory extensions"}
DECOMPRESS = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


class V2Tensor(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str = Field(max_length=256)
    shape: list[StrictInt] = Field(max_length=16)
    datatype: str = Field(max_length=16)
    parameters: dict[str, Any] | None = None
    data: list[Any] | None = None  # absent when parameters.binary_data_size says where the bytes are


class V2RequestedOutput(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str = Field(max_length=256)
    parameters: dict[str, Any] | None = None


class V2RequestParameters(BaseModel):
    model_config = ConfigDict(extra="allow")
    binary_data_output: StrictBool = False
    # microseconds, as Triton's: how long the request may wait for its turn (429 after that); once it runs, only the
    # agent's own V2_TIMEOUT_S stops it, so no client can make the agent restart a model that others use
    timeout: StrictInt | None = Field(None, ge=1, le=3600 * 10**6)


class V2InferRequest(BaseModel):
    model_config = ConfigDict(extra="allow")  # e.g. KServe's client sends model_name
    id: str | None = Field(None, max_length=256)
    inputs: list[V2Tensor] = Field(min_length=1, max_length=64)
    outputs: list[V2RequestedOutput] | None = Field(None, max_length=64)
    parameters: V2RequestParameters | None = None


def _refuse_unsupported(request: V2InferRequest) -> None:
    for tensor in [*request.inputs, *(request.outputs or [])]:
        for key, what in UNSUPPORTED_PARAMETERS.items():
            if key in (tensor.parameters or {}):
                raise WireError(f"'{tensor.name[:64]}': parameters.{key} asks for {what}, which this server does "
                                f"not implement (extensions: {EXTENSIONS})")


def _binary_outputs(request: V2InferRequest, outputs: list[str]) -> list[tuple[str, bool]]:
    """The outputs to return, in order, and whether each goes as binary data."""
    default = request.parameters.binary_data_output if request.parameters else False
    if not request.outputs:
        return [(name, default) for name in outputs]
    chosen = []
    for wanted in request.outputs:
        if wanted.name not in outputs:
            raise WireError(f"no output '{wanted.name[:64]}'; the model has {_names(outputs)}")
        binary = (wanted.parameters or {}).get("binary_data", default)
        if not isinstance(binary, bool):
            raise WireError(f"output '{wanted.name[:64]}': parameters.binary_data must be true or false")
        chosen.append((wanted.name, binary))
    return chosen


def _names(names) -> str:
    """Up to 8 names, each cut to 64 characters: error messages stay short whatever a request sends."""
    names = sorted(names)
    shown = [name[:64] for name in names[:8]]
    return f"{shown}{f' and {len(names) - 8} more' if len(names) > 8 else ''}"


def _tensor_metadata(name: str, spec: dict) -> dict:
    """A v2 metadata tensor: the datatype, and the shape with -1 where a dimension is dynamic."""
    datatype = "BYTES" if spec["dtype"] in ("str", "object", "bytes") else NUMPY_TO_V2.get(spec["dtype"], "FP32")
    return {"name": name, "datatype": datatype,
            "shape": [d if isinstance(d, int) else -1 for d in spec["shape"]]}


def _check_feeds(feeds: dict[str, np.ndarray], specs: dict[str, dict]) -> None:
    """Every model input given, with the model's datatype and rank (sizes are the runtime's to check)."""
    missing = sorted(set(specs) - set(feeds))
    extra = sorted(set(feeds) - set(specs))
    if missing or extra:
        raise WireError(f"inputs {_names(feeds)} do not match the model's {_names(specs)}")
    for name, spec in specs.items():
        feed, wanted = feeds[name], NUMPY_TO_V2.get(spec["dtype"], spec["dtype"])
        if feed.dtype.name != spec["dtype"] or feed.ndim != len(spec["shape"]):
            raise WireError(f"input '{name}' is {NUMPY_TO_V2[feed.dtype.name]}{list(feed.shape)}; the model takes "
                            f"{wanted}{spec['shape']}")


def decompress(body: bytes, encoding: str | None, limit: int) -> bytes:
    """``body`` inflated when its Content-Encoding says gzip or deflate, to at most ``limit`` bytes."""
    encoding = (encoding or "identity").strip().lower()
    if encoding == "identity":
        return body
    if encoding not in DECOMPRESS:
        raise HTTPException(415, f"Content-Encoding {encoding[:32]!r} is not supported; use gzip, deflate or none")
    try:
        inflater = zlib.decompressobj(DECOMPRESS[encoding])
        raw = inflater.decompress(body, limit + 1)
    except zlib.error:
        raise WireError(f"the body is not valid {encoding} data") from None
    if len(raw) > limit or inflater.unconsumed_tail:
        raise HTTPException(413, f"the decompressed body is over the {limit} byte limit")
    return raw


def only_version_1(request: Request) -> None:
    version = request.path_params.get("version")
    if version is not None and version != "1":
        raise HTTPException(404, f"no version {version[:32]!r}: every stored model has only version 1")


def install_kserve_v2(app: FastAPI, store, runs, sessions, auth) -> dict[str, type[BaseModel]]:
    """Add the v2 routes; returns the schemas the OpenAPI document needs for the inference body."""

    def session_for(digest: str):
        path = store.model_path(digest)
        if path is None or store.meta(digest) is None:
            raise HTTPException(404, f"no model {digest}; upload it to /v1/artifacts first")
        try:
            return sessions.get(digest, path)
        except SessionError as exc:
            raise HTTPException(502, f"the model does not load: {exc}") from None

    def model(path: str, method: str, statuses: tuple[int, ...], **kwargs):
        """One handler on ``/v2/models/{digest}{path}`` and, outside the OpenAPI document, on
        ``/v2/models/{digest}/versions/1{path}`` (clients that name a version)."""
        def decorate(handler):
            for prefix, listed in (("/v2/models/{digest}", True), ("/v2/models/{digest}/versions/{version}", False)):
                getattr(app, method)(prefix + path, dependencies=[*auth, Depends(only_version_1)],
                                     responses=errors(*statuses), include_in_schema=listed, **kwargs)(handler)
            return handler
        return decorate

    @app.get("/v2/health/live")
    def live() -> dict:
        """Liveness, like /v1/health: no token needed."""
        return {"live": True}

    @app.get("/v2/health/ready", dependencies=auth, responses=errors(401))
    def ready() -> dict:
        return {"ready": True}

    @app.get("/v2", dependencies=auth, responses=errors(401))
    def server_metadata() -> dict:
        return {"name": "edgekit", "version": __version__, "extensions": EXTENSIONS}

    @model("/ready", "get", (401, 404, 422))
    def model_ready(digest: str = PathParam(pattern=DIGEST_PATTERN)) -> dict:
        if store.meta(digest) is None:  # stored means it loaded: uploads are checked before they are kept
            raise HTTPException(404, f"no model {digest}")
        return {"name": digest, "ready": True}

    @model("", "get", (401, 404, 422, 429, 502))
    def metadata(digest: str = PathParam(pattern=DIGEST_PATTERN)) -> dict:
        with runs.slot():
            session = session_for(digest)
        meta = store.meta(digest)
        return {"name": digest, "versions": ["1"], "platform": runtime(meta["format"]).v2_platform,
                "inputs": [_tensor_metadata(n, spec) for n, spec in session.inputs.items()],
                "outputs": [_tensor_metadata(n, session.output_specs[n]) for n in session.outputs]}

    def run(digest: str, body: bytes, encoding: str | None, header_length: str | None) -> Response:
        """Parse, check, infer and encode: everything CPU-bound, in a worker thread."""
        header, binary = split_body(decompress(body, encoding, runs.limits.max_request_bytes), header_length)
        parsed = load_json(header, "body" if header_length is None else "JSON header")
        request = validate_body(V2InferRequest, parsed)
        _refuse_unsupported(request)
        feeds = dict(zip([t.name for t in request.inputs], read_tensors(parsed["inputs"], binary, "input")))
        wait_s = None
        if request.parameters and request.parameters.timeout:
            wait_s = request.parameters.timeout / 1e6
        with runs.slot(wait_s):
            session = session_for(digest)
            _check_feeds(feeds, session.inputs)
            chosen = _binary_outputs(request, session.outputs)
            try:  # only the agent's own limit kills a session: other clients' requests use it too
                outputs, compute_ms = session.infer(feeds, timeout_s=V2_TIMEOUT_S)
            except SessionError as exc:
                if exc.status != "error":  # the session process is gone or hung: replace it next time
                    sessions.drop(digest)
                raise HTTPException(502 if exc.status != "error" else 400, f"{exc.status}: {exc}") from None
        by_name = dict(zip(session.outputs, outputs))
        entries, chunks = encode_tensors([(name, by_name[name], binary) for name, binary in chosen])
        reply = {"model_name": digest, "model_version": "1", **({"id": request.id} if request.id else {}),
                 "parameters": {"edgekit_compute_ms": compute_ms}, "outputs": entries}
        content, length = dump_body(reply, chunks)
        if length is None:
            return Response(content, media_type="application/json")
        return Response(content, media_type="application/octet-stream", headers={HEADER_LENGTH: str(length)})

    @model("/infer", "post", (400, 401, 404, 411, 413, 415, 422, 429, 502),
           openapi_extra=json_body("V2InferRequest", binary=True), response_class=Response)
    async def infer(request: Request, digest: str = PathParam(pattern=DIGEST_PATTERN)) -> Response:
        body = await request.body()
        return await run_in_threadpool(run, digest, body, request.headers.get("content-encoding"),
                                       request.headers.get(HEADER_LENGTH))

    return {"V2InferRequest": V2InferRequest}
