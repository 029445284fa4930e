"""Simplify with onnx-simplifier; its own output check decides whether the result is usable. Its check runs on
inputs of the first calibration sample's shapes: a symbolic height taken as 1 fails a 3x3 convolution."""

from __future__ import annotations

from pathlib import Path

import onnx

from ...errors import OutputMismatchError
from ...quiet import quiet
from ..onnx_graph import node_count
from .base import Artifact, Step, StepContext, StepResult, register
from .prepare import sample_feeds

CHECK_RUNS = 3


@register
class Simplify(Step):
    name = "simplify"

    def apply(self, artifact: Artifact, out_path: Path, context: StepContext) -> StepResult:
        import onnxsim

        model = onnx.load(str(artifact.path))
        before = node_count(model)
        test_shapes = {name: list(array.shape) for name, array in sample_feeds(context).items()}
        with quiet(native=True):  # onnxsim prints from C++ ("failed to run op ... skip")
            simplified, check_ok = onnxsim.simplify(model, check_n=CHECK_RUNS, test_input_shapes=test_shapes)
        if not check_ok:
            raise OutputMismatchError("onnxsim's check failed: the simplified model's outputs differ from the input "
                                      "model's", float("nan"), hint="rerun with --no-simplify")
        onnx.save(simplified, str(out_path))
        return StepResult(self.name, Artifact(out_path, artifact.format, artifact.precision),
                          {"check_n": CHECK_RUNS},
                          details={"check_ok": check_ok, "nodes_before": before, "nodes_after": node_count(simplified)})
