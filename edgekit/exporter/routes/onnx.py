"""ONNX Runtime: the FP32 ONNX model every ONNX-based route shares, then FP16, static QDQ or dynamic INT8."""

from __future__ import annotations

from pathlib import Path

from ...targets import Precision
from ..guard import attempt
from ..model_kind import model_kind
from ..rescue import rescue_onnx_int8
from ..steps import Artifact, StepResult, get_step
from ..steps.export_onnx import export_onnx
from .base import BuildRun, PlannedStep, Route

_STATIC_CONV = ("static QDQ with calibrated activations and per-channel weights: dynamic INT8 would leave the "
                "convolutions in float (ConvInteger is many times slower than FP32)")
OPTIONAL_STEPS = ("simplify", "fuse_transformer")  # clean-ups: a refused result is skipped, not a failure


def float_onnx_plan(context, source_kind: str, simplify: bool, dynamic_batch: bool) -> list[PlannedStep]:
    """The shared chain that makes the FP32 ONNX model: export (PyTorch sources), prepare, the transformer fusion
    (attention models), onnxsim, ONNX Runtime's offline optimization."""
    profile, kind = context.profile, context.model_kind
    chain = []
    if source_kind == "pytorch":
        chain.append(PlannedStep("export_onnx", {"opset": profile.opset, "dynamic_batch": dynamic_batch}))
    chain.append(PlannedStep("prepare", {"fix_dims": True, "min_opset": 13}))
    if kind is not None and kind.has_attention:
        chain.append(PlannedStep("fuse_transformer"))
    if simplify:
        chain.append(PlannedStep("simplify"))
    if profile.graph_optimization != "disabled":
        chain.append(PlannedStep("optimize", {"level": profile.graph_optimization}))
    return chain


def build_float_onnx(run: BuildRun) -> tuple[Path | None, str | None, list[StepResult]]:
    """Run the shared chain into ``work/``; returns the FP32 model, or None and the failing step's reason, and the
    steps that ran. The graph's model kind is read here (it decides the fusion and what ``int8`` becomes)."""
    common: list[StepResult] = []
    if run.source.kind == "pytorch":
        with run.progress.step("export to ONNX"):
            exported, reason = attempt("export to ONNX", lambda: export_onnx(
                run.source, run.work / "exported.onnx", run.context, run.dynamic_batch))
        if exported is None:
            return None, reason, common
        common.append(exported)
    current = common[-1].artifact if common else Artifact(run.source.path, "onnx", "fp32")
    run.context.model_kind = model_kind(current.path)
    for planned in float_onnx_plan(run.context, run.source.kind, run.simplify, run.dynamic_batch):
        if planned.name == "export_onnx":
            continue
        step, out_path = get_step(planned.name), run.work / f"{planned.name}.onnx"
        with run.progress.step(planned.name):
            result, reason = attempt(planned.name, lambda: step.run(current, out_path, run.context))
        if reason is not None and planned.name in OPTIONAL_STEPS:
            run.progress.note(f"{planned.name} skipped: {reason}")
            result = StepResult(planned.name, current, {}, details={"skipped_because": reason})
        elif reason is not None:
            return None, reason, common
        common.append(result)
        current = result.artifact
    return current.path, None, common


class OnnxRoute(Route):
    name = "onnx"
    title = "ONNX"
    suffix = ".onnx"
    precisions = (Precision.fp32, Precision.fp16, Precision.int8, Precision.int8_static, Precision.int8_dynamic)
    typical_build_s = {"int8_static": 3.0, "int8_dynamic": 1.5, "fp16": 1.0}
    int8_kernel_archs = ("arm64", "armv7", "x86_64")
    sources = ("pytorch", "onnx")
    float_onnx_sources = ("pytorch", "onnx")
    rescue_summary = ("the most error-adding nodes kept in float (1, 2, 4, … up to a quarter, or what its lead "
                      "pays for), a stacked head's broken channel group first")
    int8_recipes = {
        "attention": (Precision.int8_dynamic, "dynamic INT8 MatMuls with per-channel weights: static QDQ fixes one "
                      "calibrated range per activation, which transformer activations (outlier channels) do not "
                      "fit (all-MiniLM-L6: embedding cosine 0.92 static, 0.99 dynamic)"),
        "mixed": (Precision.int8_static, _STATIC_CONV + "; the rescue keeps sensitive MatMuls in float"),
        "convolutional": (Precision.int8_static, _STATIC_CONV),
        "dense": (Precision.int8_static, "static QDQ with calibrated activations (no attention blocks)"),
    }

    def plan_steps(self, precision: Precision, context) -> list[PlannedStep]:
        settings = context.profile.quantization
        if precision == Precision.fp16:
            return [PlannedStep("fp16", {"keep_io_types": True}, lambda: get_step("fp16"))]
        if precision == Precision.int8_static:
            return [PlannedStep("quantize_static", {
                "format": "QDQ", "calibration": settings.calibration, "samples": settings.calibration_samples,
                "activations": settings.activation_type, "weights": settings.weight_type,
                "per_channel": settings.per_channel}, lambda: get_step("quantize_static"))]
        if precision == Precision.int8_dynamic:
            return [PlannedStep("quantize_dynamic", {
                "weights": settings.weight_type, "per_channel": settings.per_channel,
                "reduce_range": settings.reduce_range_for("dynamic", context.profile.arch)},
                lambda: get_step("quantize_dynamic"))]
        return []

    def rescue(self, precision: str, source_kind: str):
        return rescue_onnx_int8 if precision in ("int8_static", "int8_dynamic") else None
