"""Static INT8 in QDQ format: per-channel weights, activations calibrated on real samples.

After quantizing, the model is loaded once with all of ONNX Runtime's fusions on this host to see which
compute ops became integer kernels (QLinear*) and which stayed in float, so the report can say why.
"""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path

import onnx

from ...errors import ExportError, InputError
from ...quiet import quiet
from ...runtime.onnxrt import OnnxRunner
from ..onnx_graph import op_counts
from .base import Artifact, Step, StepContext, StepResult, register

FLOAT_COMPUTE_OPS = ("Conv", "FusedConv", "ConvTranspose", "MatMul", "FusedMatMul", "Gemm", "NchwcConv")
INTEGER_OPS = ("ConvInteger", "MatMulInteger", "QGemm", "MatMulIntegerToFloat", "DynamicQuantizeMatMul", "QAttention")


class _SampleReader:
    """ONNX Runtime's calibration protocol: ``get_next()`` returns a feed dict or None."""

    def __init__(self, samples, count: int):
        self._iter = iter(samples.head(count))

    def get_next(self):
        return next(self._iter, None)


@register
class QuantizeStatic(Step):
    """``exclude_nodes`` keeps those nodes in float (the accuracy rescue uses it)."""

    name = "quantize_static"

    def __init__(self, exclude_nodes: list[str] | None = None):
        self.exclude_nodes = list(exclude_nodes or [])

    def apply(self, artifact: Artifact, out_path: Path, context: StepContext) -> StepResult:
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
        from onnxruntime.quantization.shape_inference import quant_pre_process

        settings = context.profile.quantization
        if context.calibration is None:
            raise InputError("static INT8 needs calibration samples", hint="pass --calib FILE.npz")
        count = min(settings.calibration_samples, len(context.calibration))
        reduce_range = settings.reduce_range_for("static", context.profile.arch)
        types = {"int8": QuantType.QInt8, "uint8": QuantType.QUInt8}
        method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                  "percentile": CalibrationMethod.Percentile}[settings.calibration]
        params = {"format": "QDQ", "calibration": settings.calibration, "calibration_samples": count,
                  "calibration_data": context.calibration.origin, "activation_type": settings.activation_type,
                  "weight_type": settings.weight_type, "per_channel": settings.per_channel,
                  "reduce_range": reduce_range, "nodes_kept_in_float": self.exclude_nodes}
        with tempfile.TemporaryDirectory(prefix="edgekit-calib-") as scratch:
            prepared = Path(scratch) / "prepared.onnx"
            try:
                with quiet():
                    with contextlib.chdir(scratch):  # a failed shape inference leaves a file in the cwd
                        quant_pre_process(str(Path(artifact.path).resolve()), str(prepared), skip_optimization=True)
                    quantize_static(prepared, out_path, _SampleReader(context.calibration, count),
                                    quant_format=QuantFormat.QDQ, per_channel=settings.per_channel,
                                    reduce_range=reduce_range,
                                    activation_type=types[settings.activation_type],
                                    weight_type=types[settings.weight_type], calibrate_method=method,
                                    nodes_to_exclude=self.exclude_nodes or None,
                                    calibration_cache_path=Path(scratch) / "calibration.cache")
            except Exception as exc:
                raise ExportError(f"static INT8 quantization failed: {type(exc).__name__}: {exc}",
                                  hint="check the calibration data matches the model's inputs") from exc
            details = {"qdq_nodes": _qdq_counts(out_path), "host_fusion": host_fusion_report(out_path, scratch)}
        return StepResult(self.name, Artifact(out_path, artifact.format, "int8_static"), params, details=details)


def _qdq_counts(path: Path) -> dict[str, int]:
    counts = op_counts(path)
    return {op: counts.get(op, 0) for op in ("QuantizeLinear", "DequantizeLinear")}


def host_fusion_report(path: Path, scratch: str) -> dict:
    """Load with every fusion on this host; count integer kernels and compute ops left in float (named)."""
    optimized = Path(scratch) / "host-optimized.onnx"
    OnnxRunner(path, threads=1, optimization="all", optimized_model_path=optimized)
    model = onnx.load(str(optimized))
    counts = op_counts(model)
    integer = {op: n for op, n in counts.items() if op.startswith("QLinear") or op in INTEGER_OPS}
    left = [f"{node.name or '?'} ({node.op_type})" for node in model.graph.node if node.op_type in FLOAT_COMPUTE_OPS]
    return {"integer_ops": integer, "float_compute_ops": len(left), "left_in_float": left[:50]}
