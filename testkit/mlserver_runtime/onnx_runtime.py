"""A minimal custom MLServer runtime: one ONNX file served with ONNX Runtime (CPU) over KServe v2.

Runs inside ``.venv-mlserver`` (``scripts/setup-mlserver.sh``), not edgekit's venv: it imports only mlserver,
onnxruntime and numpy. The model's ``parameters.uri`` is the ``.onnx`` path; ``parameters.extra.threads`` sets
ONNX Runtime's intra-op threads (default 1). The served metadata (inputs and outputs) is read from the ONNX file
at load time, so a client sees what the model really takes.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse, MetadataTensor

_V2 = {"tensor(float)": "FP32", "tensor(float16)": "FP16", "tensor(double)": "FP64", "tensor(int64)": "INT64",
       "tensor(int32)": "INT32", "tensor(int8)": "INT8", "tensor(uint8)": "UINT8", "tensor(bool)": "BOOL"}


def _metadata(values) -> list[MetadataTensor]:
    return [MetadataTensor(name=v.name, datatype=_V2.get(v.type, "FP32"),
                           shape=[d if isinstance(d, int) else -1 for d in v.shape]) for v in values]


class OnnxModel(MLModel):
    async def load(self) -> bool:
        parameters = self.settings.parameters
        extra = (parameters.extra if parameters else None) or {}
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(extra.get("threads", 1))
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._session = ort.InferenceSession(parameters.uri, options, providers=["CPUExecutionProvider"])
        self.inputs = _metadata(self._session.get_inputs())
        self.outputs = _metadata(self._session.get_outputs())
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        feeds = {request_input.name: NumpyCodec.decode_input(request_input) for request_input in payload.inputs}
        expected = {i.name: i.type for i in self._session.get_inputs()}
        missing = sorted(set(expected) - set(feeds))
        if missing:
            raise ValueError(f"missing inputs {missing}; the model takes {sorted(expected)}")
        feeds = {name: np.ascontiguousarray(feeds[name]) for name in expected}
        outputs = self._session.run(None, feeds)
        return InferenceResponse(
            model_name=self.name, id=payload.id,
            outputs=[NumpyCodec.encode_output(name=o.name, payload=np.asarray(value))
                     for o, value in zip(self._session.get_outputs(), outputs)])
