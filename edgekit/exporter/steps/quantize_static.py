"""Static INT8 in QDQ format: per-channel weights, activations calibrated on real samples.

Shape inference runs first (ONNX Runtime's symbolic inference, else ONNX's own), in a scratch directory. Below
opset 13 the weights are per-tensor (``DequantizeLinear`` has no axis there). ``If``/``Loop`` subgraphs stay in
float: the quantizer does not enter them; a model whose compute all sits in subgraphs has nothing to quantize.

After quantizing, the model is loaded once with all of ONNX Runtime's fusions on this host to see which
compute ops became integer kernels (QLinear*) and which stayed in float, so the report can say why.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import onnx

from ...errors import ExportError, InputError
from ...files import scratch_cwd, sha256_file
from ...quiet import quiet
from ...runtime.onnxrt import OnnxRunner
from ..onnx_graph import default_opset, op_counts
from .base import Artifact, Step, StepContext, StepResult, register
from .prepare import QDQ_MIN_OPSET, control_flow_nodes
from .verify import first_lines

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

        settings = context.profile.quantization
        if context.calibration is None:
            raise InputError("static INT8 needs calibration samples", hint="pass --calib FILE.npz")
        count = min(settings.calibration_samples, len(context.calibration))
        reduce_range = settings.reduce_range_for("static", context.profile.arch)
        types = {"int8": QuantType.QInt8, "uint8": QuantType.QUInt8}
        method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                  "percentile": CalibrationMethod.Percentile}[settings.calibration]
        model = onnx.load(str(artifact.path), load_external_data=False)
        opset = default_opset(model)
        per_channel = settings.per_channel and opset >= QDQ_MIN_OPSET
        params = {"format": "QDQ", "calibration": settings.calibration, "calibration_samples": count,
                  "calibration_data": context.calibration.origin, "activation_type": settings.activation_type,
                  "weight_type": settings.weight_type, "per_channel": per_channel,
                  "reduce_range": reduce_range, "nodes_kept_in_float": self.exclude_nodes}
        details: dict = {}
        if per_channel != settings.per_channel:
            details["per_tensor_because"] = (f"opset {opset} < {QDQ_MIN_OPSET}: DequantizeLinear has no axis, so "
                                             "per-channel weights cannot be written")
        subgraphs = control_flow_nodes(model)
        if subgraphs:
            details["control_flow_left_in_float"] = subgraphs
        with tempfile.TemporaryDirectory(prefix="edgekit-calib-") as scratch:
            prepared = Path(scratch) / "prepared.onnx"
            details["shape_inference"] = _infer_shapes(artifact.path, prepared)
            cache = Path(scratch) / "calibration.cache"
            key = (str(artifact.path), sha256_file(artifact.path), settings.calibration, count,
                   context.calibration.origin)
            if key in context.calibration_ranges:  # a rescue trial: the same float model, data and method
                cache.write_bytes(context.calibration_ranges[key])
                details["calibration"] = "ranges reused from the first quantization of this model"
            try:
                with quiet():
                    quantize_static(prepared, out_path, _SampleReader(context.calibration, count),
                                    quant_format=QuantFormat.QDQ, per_channel=per_channel,
                                    reduce_range=reduce_range,
                                    activation_type=types[settings.activation_type],
                                    weight_type=types[settings.weight_type], calibrate_method=method,
                                    nodes_to_exclude=self.exclude_nodes or None,
                                    calibration_cache_path=cache)
            except Exception as exc:
                raise ExportError(f"static INT8 quantization failed: {type(exc).__name__}: "
                                  f"{first_lines(str(exc))}",
                                  hint="check the calibration data matches the model's inputs") from exc
            context.calibration_ranges.setdefault(key, cache.read_bytes())
            details["qdq_nodes"] = _qdq_counts(out_path)
            if not details["qdq_nodes"]["QuantizeLinear"]:
                where = f": the compute sits in {len(subgraphs)} If/Loop/Scan subgraph(s), left in float" \
                    if subgraphs else ""
                raise ExportError(f"static INT8 found nothing to quantize{where}",
                                  hint="export the model without control flow (many publish an If-less variant)")
            details["host_fusion"] = host_fusion_report(out_path, scratch)
        return StepResult(self.name, Artifact(out_path, artifact.format, "int8_static"), params, details=details)


def _infer_shapes(source: Path, out_path: Path) -> str:
    """ONNX Runtime's pre-processing with symbolic shape inference, else with ONNX's own shape inference only
    (symbolic inference fails on many exported graphs). Runs in a scratch working directory: on failure the
    symbolic pass writes ``sym_shape_infer_temp.onnx`` and ``<uuid>.data`` into the current one."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    try:
        with scratch_cwd(), quiet():
            quant_pre_process(str(source), str(out_path), skip_optimization=True)
        return "symbolic"
    except Exception as exc:  # SymbolicShapeInference raises bare Exception and TypeErrors on real graphs
        symbolic_error = f"{type(exc).__name__}: {first_lines(str(exc))[:200]}"
    try:
        with scratch_cwd(), quiet():
            quant_pre_process(str(source), str(out_path), skip_optimization=True, skip_symbolic_shape=True)
    except Exception as exc:
        raise ExportError(f"shape inference failed: symbolic: {symbolic_error}; onnx: {type(exc).__name__}: "
                          f"{first_lines(str(exc))[:200]}", hint="fix the input dims with --input") from exc
    return f"onnx (symbolic failed: {symbolic_error})"


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
