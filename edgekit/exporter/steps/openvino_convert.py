"""FP32 ONNX -> OpenVINO IR (``.xml`` + ``.bin``) with ``openvino.convert_model``.

OpenVINO separates storage precision from execution precision: the IR holds the graph and its weights, and the
CPU plugin picks the arithmetic at compile time from the ``INFERENCE_PRECISION_HINT``. So ``fp32`` and ``bf16``
are the same converted graph: ``fp32`` keeps f32 weights (bit-exact with the ONNX model), ``bf16`` stores them in
fp16 (OpenVINO's default compression, half the file) and its runner sets the bf16 hint.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from ...errors import ExportError
from ...quiet import quiet
from ...runtime.openvino import load_openvino, telemetry_declined
from .base import Artifact, Step, StepContext, StepResult, register

EXECUTION_HINT = {"fp32": "f32", "bf16": "bf16"}


@contextlib.contextmanager
def openvino_tools() -> Iterator[None]:
    """Run OpenVINO's converter or NNCF quietly and with their usage telemetry declined (see
    ``runtime.openvino.telemetry_declined``)."""
    with telemetry_declined(), quiet(native=True):
        yield


def conversion_reason(exc: Exception) -> str:
    """OpenVINO's own summary lines (e.g. ``No conversion rule found for operations: ai.onnx.ml.Scaler``), without
    the C++ source locations around them."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    summary = [line.lstrip("- ") for line in lines if line.startswith("--")]
    useful = summary or [line for line in lines if not line.startswith(("Exception from", "Check '"))]
    return "; ".join(useful) or type(exc).__name__


def ir_op_counts(model) -> dict[str, int]:
    return dict(Counter(op.get_type_name() for op in model.get_ops()).most_common())


@register
class OpenVinoConvert(Step):
    name = "openvino_convert"

    def __init__(self, precision: str = "fp32"):
        if precision not in EXECUTION_HINT:
            raise ValueError(f"OpenVINO IR precision must be one of {list(EXECUTION_HINT)}, not {precision!r}")
        self.precision = precision

    def apply(self, artifact: Artifact, out_path: Path, context: StepContext) -> StepResult:
        ov = load_openvino()
        try:
            with openvino_tools():
                model = ov.convert_model(str(artifact.path))
        except Exception as exc:  # OpConversionFailure, GeneralFailure, …: all mean "OpenVINO cannot read it"
            raise ExportError(f"OpenVINO conversion failed: {conversion_reason(exc)}",
                              hint="the ONNX model uses an op OpenVINO does not support; the other formats are "
                                   "unaffected") from exc
        compress = self.precision != "fp32"
        ov.save_model(model, str(out_path), compress_to_fp16=compress)
        counts = ir_op_counts(model)
        params = {"converter": "openvino.convert_model", "openvino": ov.get_version(),
                  "weights_stored_as": "fp16" if compress else "fp32",
                  "inference_precision_hint": EXECUTION_HINT[self.precision]}
        return StepResult(self.name, Artifact(out_path, "openvino", self.precision), params,
                          details={"ops": sum(counts.values()), "op_types": counts})
