"""The Open Inference Protocol (KServe v2 REST) for stored artifacts: model name = artifact digest.

So an agent on a GPU server (or any host) can be the cloud baseline of ``edgekit compare``. Inference runs in
a long-lived, crash-isolated session per model; the measured compute time is returned in ``parameters``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from fastapi import FastAPI, HTTPException
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field

from .openapi import errors
from .sessions import SessionError

DIGEST_PATTERN = r"^[0-9a-f]{64}$"
MAX_ELEMENTS = 16 * 1024 * 1024
V2_TIMEOUT_S = 60.0  # one v2 request may hold the run slot this long before its session is killed
V2_TYPES = {"FP32": "float32", "FP16": "float16", "FP64": "float64", "INT64": "int64", "INT32": "int32",
            "INT8": "int8", "UINT8": "uint8", "BOOL": "bool"}
NUMPY_TO_V2 = {v: k for k, v in V2_TYPES.items()}
PLATFORMS = {"onnx": "onnxruntime_onnx", "tflite": "tensorflow_lite", "openvino": "openvino_ir"}


class V2Tensor(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str = Field(max_length=256)
    shape: list[int] = Field(max_length=8)
    datatype: str
    data: list[Any]


class V2InferRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str | None = Field(None, max_length=256)
    inputs: list[V2Tensor] = Field(min_length=1, max_length=64)
    parameters: dict[str, Any] | None = None


def _to_array(tensor: V2Tensor) -> np.ndarray:
    if tensor.datatype not in V2_TYPES:
        raise HTTPException(400, f"input '{tensor.name}': datatype {tensor.datatype} is not one of {list(V2_TYPES)}")
    if any(d < 0 for d in tensor.shape) or math.prod(tensor.shape) > MAX_ELEMENTS:  # exact: no int64 overflow
        raise HTTPException(400, f"input '{tensor.name}': bad or too large shape {tensor.shape}")
    try:
        values = np.asarray(tensor.data, dtype=V2_TYPES[tensor.datatype]).reshape(tensor.shape)
    except (ValueError, TypeError, OverflowError) as exc:  # OverflowError: e.g. 2**70 as INT64
        raise HTTPException(400, f"input '{tensor.name}': data does not fit shape {tensor.shape}: {exc}") from None
    return values


def install_kserve_v2(app: FastAPI, store, runs, sessions, auth) -> None:
    def session_for(digest: str):
        path = store.model_path(digest)
        if path is None or store.meta(digest) is None:
            raise HTTPException(404, f"no model {digest}; upload it to /v1/artifacts first")
        try:
            return sessions.get(digest, path)
        except SessionError as exc:
            raise HTTPException(502, f"the model does not load: {exc}") from None

    @app.get("/v2/health/ready", dependencies=auth, responses=errors(401))
    def ready() -> dict:
        return {"ready": True}

    @app.get("/v2/models/{digest}", dependencies=auth, responses=errors(401, 404, 422, 429, 502))
    def metadata(digest: str = PathParam(pattern=DIGEST_PATTERN)) -> dict:
        with runs.slot():
            session = session_for(digest)
        meta = store.meta(digest)
        return {"name": digest, "versions": ["1"], "platform": PLATFORMS[meta["format"]],
                "inputs": [{"name": n, "datatype": NUMPY_TO_V2.get(spec["dtype"], "FP32"),
                            "shape": [d if isinstance(d, int) else -1 for d in spec["shape"]]}
                           for n, spec in session.inputs.items()],
                "outputs": [{"name": n, "datatype": "FP32", "shape": []} for n in session.outputs]}

    @app.post("/v2/models/{digest}/infer", dependencies=auth,
              responses=errors(400, 401, 404, 411, 413, 422, 429, 502))
    def infer(request: V2InferRequest, digest: str = PathParam(pattern=DIGEST_PATTERN)) -> dict:
        feeds = {tensor.name: _to_array(tensor) for tensor in request.inputs}
        with runs.slot():
            session = session_for(digest)
            missing = sorted(set(session.inputs) - set(feeds))
            if missing:
                raise HTTPException(400, f"missing inputs {missing}; the model takes {list(session.inputs)}")
            try:
                outputs, compute_ms = session.infer(feeds, timeout_s=V2_TIMEOUT_S)
            except SessionError as exc:
                if exc.status != "error":  # the session process is gone or hung: replace it next time
                    sessions.drop(digest)
                raise HTTPException(502 if exc.status != "error" else 400, f"{exc.status}: {exc}") from None
        return {"model_name": digest, "model_version": "1", "id": request.id,
                "parameters": {"edgekit_compute_ms": compute_ms},
                "outputs": [{"name": name, "shape": list(out.shape), "datatype": NUMPY_TO_V2.get(out.dtype.name, "FP32"),
                             "data": out.ravel().tolist()} for name, out in zip(session.outputs, outputs)]}
