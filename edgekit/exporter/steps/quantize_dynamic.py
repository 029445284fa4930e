"""Dynamic INT8: weights quantized ahead of time, activations at run time. Suits MatMul-heavy transformers.

Convolutions are left in float on purpose: ONNX Runtime's ConvInteger path is many times slower than FP32. A fused
``Attention`` stays in float where ONNX Runtime's quantizer cannot make it a ``QAttention`` (which has no
``attention_bias`` input, the form onnxscript's fusion writes); its MatMuls around it are quantized.
"""

from __future__ import annotations

from pathlib import Path

from ...errors import ExportError
from ...quiet import quiet
from ..onnx_graph import op_counts
from .base import Artifact, Step, StepContext, StepResult, register

DYNAMIC_OP_TYPES = ["MatMul", "Attention", "LSTM"]
_FLOAT_LEFT = ("MatMul", "Gemm", "Conv", "Attention", "MultiHeadAttention")
_INTEGER_OPS = ("MatMulInteger", "DynamicQuantizeMatMul", "DynamicQuantizeLSTM", "QAttention")


@register
class QuantizeDynamic(Step):
    """``exclude_nodes`` keeps those nodes in float (the accuracy rescue uses it)."""

    name = "quantize_dynamic"

    def __init__(self, exclude_nodes: list[str] | None = None):
        self.exclude_nodes = list(exclude_nodes or [])

    def apply(self, artifact: Artifact, out_path: Path, context: StepContext) -> StepResult:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        settings = context.profile.quantization
        reduce_range = settings.reduce_range_for("dynamic", context.profile.arch)
        params = {"op_types": DYNAMIC_OP_TYPES, "per_channel": settings.per_channel,
                  "weight_type": settings.weight_type, "reduce_range": reduce_range,
                  "nodes_kept_in_float": self.exclude_nodes}
        try:
            with quiet():
                quantize_dynamic(artifact.path, out_path, op_types_to_quantize=DYNAMIC_OP_TYPES,
                                 per_channel=settings.per_channel, reduce_range=reduce_range,
                                 nodes_to_exclude=self.exclude_nodes,
                                 weight_type=QuantType.QInt8 if settings.weight_type == "int8" else QuantType.QUInt8)
        except Exception as exc:
            raise ExportError(f"dynamic INT8 quantization failed: {type(exc).__name__}: {exc}") from exc
        counts = op_counts(out_path)
        quantized = sum(counts.get(op, 0) for op in _INTEGER_OPS)
        return StepResult(self.name, Artifact(out_path, artifact.format, "int8_dynamic"), params,
                          details={"quantized_ops": quantized,
                                   "float_ops_left": {op: counts[op] for op in _FLOAT_LEFT if counts.get(op)}})
