"""FP32 ONNX -> OpenVINO IR (``.xml`` + ``.bin``) with ``openvino.convert_model``.

OpenVINO separates storage precision from execution precision: the IR holds the graph and its weights, and the
CPU plugin picks the arithmetic at compile time from the ``INFERENCE_PRECISION_HINT``. So ``fp32`` and ``bf16``
are the same converted graph: ``fp32`` keeps f32 weights (bit-exact with the ONNX model), ``bf16`` stores them in
fp16 (OpenVINO's default compression, half the file) and its runner sets the bf16 hint.
"""

from __future__ import annotations

import contextlib
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from ...errors import ExportError
from ...quiet import quiet
from ...runtime.openvino import load_openvino
from .base import Artifact, Step, StepContext, StepResult, register

EXECUTION_HINT = {"fp32": "f32", "bf16": "bf16"}
_DECLINE_TELEMETRY = {"CI": "true", "NNCF_CI": "1"}


@contextlib.contextmanager
def openvino_tools() -> Iterator[None]:
    """Run OpenVINO's converter and NNCF quietly and without their usage telemetry. Both send it by default
    (opt-out, from a forked process) unless they run in CI; edgekit works offline and sends nothing on its user's
    behalf. Both honour ``CI=true`` (their ``disable_in_ci``), NNCF also ``NNCF_CI`` (read when it is imported),
    so those are set for the duration of the call only, and restored."""
    saved = {name: os.environ.get(name) for name in _DECLINE_TELEMETRY}
    os.environ.update(_DECLINE_TELEMETRY)
    try:
        with quiet(native=True):
            yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


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
