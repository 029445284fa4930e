"""LiteRT (TFLite): PyTorch modules converted by litert-torch (FP32, FP16, PT2E static INT8, dynamic-range INT8);
published ONNX files through onnx2torch and the same converter, from the shared FP32 ONNX model as it is before
ONNX Runtime's own fusions; a given float
.tflite taken as it is and quantized by ai-edge-quantizer (static INT8, or dynamic range with weight-only
convolutions), rescued by keeping the ops that add the most error in float."""

from __future__ import annotations

import shutil

from ...targets import Precision
from ..candidates import Candidate
from ..guard import guarded
from ..rescue import rescue_tflite_int8
from ..steps import Artifact
from .base import BuildRun, CandidatePlan, PlannedStep, Route

_PT2E = (Precision.int8_static, "PT2E static INT8 (calibrated, int8 in and out)")
_GIVEN_QUANTIZED = (Precision.int8_static, Precision.int8_dynamic)  # what ai-edge-quantizer builds from a .tflite
_GIVEN_QUANTIZE_S = 3.0  # typical seconds of ai-edge-quantizer on a given .tflite (MediaPipe's)


class TfliteRoute(Route):
    name = "tflite"
    title = "TFLite"
    suffix = ".tflite"
    precisions = (Precision.fp32, Precision.fp16, Precision.int8, Precision.int8_static, Precision.int8_dynamic)
    typical_build_s = {"fp32": 12.0, "fp16": 12.0, "int8_dynamic": 12.0, "int8_static": 20.0}
    slow_int8 = True
    int8_kernel_archs = ("arm64", "armv7", "x86_64")
    sources = ("pytorch", "onnx", "tflite")
    float_onnx_sources = ("onnx",)
    rescue_summary = ("the most error-adding ops kept in float (1, 2, 4, … up to a quarter, or what its lead pays "
                      "for), ranked by ai-edge-quantizer's per-tensor comparison, the ranges calibrated once")
    int8_recipes = {
        "attention": (Precision.int8_dynamic, "dynamic-range INT8 (ai-edge-quantizer): PT2E static INT8 does not "
                      "take the int64 token inputs of text models"),
        "mixed": _PT2E, "convolutional": _PT2E, "dense": _PT2E,
    }

    def no_route(self, source, dynamic_batch: bool) -> str | None:
        if source.kind == "tflite":  # converted already: its shapes are its own
            return super().no_route(source, dynamic_batch)
        if dynamic_batch:
            return "TFLite export needs static shapes (drop --dynamic-batch)"
        return super().no_route(source, dynamic_batch) or self.unsized_inputs(source)

    def plan(self, listed, context, source, dynamic_batch) -> list[CandidatePlan]:
        if source.kind == "tflite":
            return self._given_plan(listed, source)
        plans = super().plan(listed, context, source, dynamic_batch)
        if source.kind == "onnx":  # onnx2torch first, then the same converter
            plans = [CandidatePlan(p.route, p.precision, (PlannedStep("onnx2torch"), *p.steps), p.note, p.excluded)
                     for p in plans]
        return plans

    def _given_plan(self, listed, source) -> list[CandidatePlan]:
        """A given .tflite: itself (benchmarked and validated as it is), and the INT8 models ai-edge-quantizer
        makes of it, gated against it."""
        plans = [CandidatePlan(self.name, source.precision, (PlannedStep("copy", {"file": source.path.name}),))]
        for precision, note in self.concrete(listed, None):
            if precision in _GIVEN_QUANTIZED:
                method = "static" if precision == Precision.int8_static else "dynamic range + weight-only conv"
                plans.append(CandidatePlan(self.name, precision.value, (PlannedStep(
                    "quantize_tflite", {"method": method, "quantizer": "ai-edge-quantizer"}),), note))
            elif precision != Precision.fp32:
                plans.append(CandidatePlan(self.name, precision.value, excluded=(
                    f"a given .tflite is quantized to {', '.join(p.value for p in _GIVEN_QUANTIZED)} only")))
        return plans

    def typical_seconds(self, plan: CandidatePlan) -> float | None:
        """A given .tflite is copied without a progress step, and quantized by ai-edge-quantizer in seconds."""
        first = plan.steps[0].name if plan.steps else None
        if first == "copy":
            return None
        return _GIVEN_QUANTIZE_S if first == "quantize_tflite" else super().typical_seconds(plan)

    def plan_steps(self, precision: Precision, context) -> list[PlannedStep]:
        return [PlannedStep("litert_torch.convert", {"precision": precision.value,
                                                     "channels_last_inputs": context.profile.channels_last_io})]

    def build_candidate(self, candidate: Candidate, plan: CandidatePlan, run: BuildRun) -> None:
        if run.source.kind == "tflite" and plan.steps[0].name == "copy":  # named as it was given: model.tflite
            shutil.copyfile(run.source.path, run.folder / "model.tflite")
            candidate.artifact = Artifact(run.folder / "model.tflite", "tflite", plan.precision)
            candidate.runner_options = {"input_names": [s.name for s in run.source.inputs]}
            return
        out_path, label = run.folder / f"model.{plan.precision}.tflite", f"tflite {plan.precision}"
        with run.progress.step(label):
            result = guarded([candidate], label, lambda: _convert(run, out_path, Precision(plan.precision)))
        if result is not None:
            candidate.artifact, candidate.steps = result.artifact, [result]
            candidate.runner_options = ({"input_names": [s.name for s in run.source.inputs]}
                                        if run.source.kind == "tflite" else self.runner_options(plan, run.context))

    def runner_options(self, plan: CandidatePlan, context) -> dict:
        return {"input_names": [s.name for s in context.inputs],
                "channels_last_inputs": context.profile.channels_last_io}

    def rescue(self, precision: str, source_kind: str):
        """ai-edge-quantizer's INT8 of a given .tflite only (litert-torch's PT2E and dynamic INT8 have none)."""
        return rescue_tflite_int8 if source_kind == "tflite" and precision in _GIVEN_QUANTIZED else None

    def rescue_float(self, run: BuildRun):
        """The given .tflite, the one source rescued here: its INT8 candidates were quantized from it and are gated
        against it."""
        return run.source.path, None


def _convert(run: BuildRun, out_path, precision: Precision):
    """The step for this source (litert-torch, ai-edge-quantizer and onnx2torch are the heavy ``tflite`` extra)."""
    channels_last = run.context.profile.channels_last_io
    if run.source.kind == "tflite":
        from ..steps.tflite_quantize import quantize_tflite

        return quantize_tflite(run.source.path, out_path, precision, run.context)
    if run.source.kind == "onnx":
        from ..steps.onnx_to_tflite import onnx_to_tflite

        base, missing = run.float_onnx()
        if base is None:
            raise RuntimeError(f"no FP32 ONNX model to convert: {missing}")
        return onnx_to_tflite(_standard_onnx(run, base).path, out_path, precision, run.context,
                              channels_last=channels_last)
    from ..steps.tflite_export import export_tflite

    return export_tflite(run.source, out_path, precision, run.context, channels_last=channels_last)


_ORT_SPECIFIC_STEPS = ("fuse_transformer", "optimize")


def _standard_onnx(run: BuildRun, base: Artifact) -> Artifact:
    """The shared FP32 chain's model before its first ONNX Runtime specific step: the transformer fusion and the
    offline optimization write ONNX Runtime's own ops (com.microsoft, LayerNormalization below opset 17), which
    onnx2torch does not know (PP-OCRv4 rec)."""
    names = [step.step for step in run.common_steps]
    first = next((i for i, name in enumerate(names) if name in _ORT_SPECIFIC_STEPS), len(names))
    return run.common_steps[first - 1].artifact if first > 0 else base
