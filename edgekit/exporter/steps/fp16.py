"""FP16 weights and compute, float32 inputs and outputs kept for callers."""

from __future__ import annotations

from pathlib import Path

import onnx

from ..onnx_graph import op_counts
from .base import Artifact, Step, StepContext, StepResult, register


@register
class Fp16(Step):
    name = "fp16"

    def apply(self, artifact: Artifact, out_path: Path, context: StepContext) -> StepResult:
        from onnxruntime.transformers.float16 import convert_float_to_float16

        model = convert_float_to_float16(onnx.load(str(artifact.path)), keep_io_types=True)
        onnx.save(model, str(out_path))
        return StepResult(self.name, Artifact(out_path, artifact.format, "fp16"), {"keep_io_types": True},
                          details={"cast_nodes": op_counts(model).get("Cast", 0)})
