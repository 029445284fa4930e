"""LiteRT (TFLite): PyTorch modules converted by litert-torch (FP32, FP16, PT2E static INT8, dynamic-range INT8);
a given .tflite file is taken as it is."""

from __future__ import annotations

import shutil

from ...targets import Precision
from ..candidates import Candidate
from ..guard import guarded
from ..model_kind import module_kind
from ..steps import Artifact
from .base import BuildRun, CandidatePlan, PlannedStep, Route

_PT2E = (Precision.int8_static, "PT2E static INT8 (calibrated, int8 in and out)")


class TfliteRoute(Route):
    name = "tflite"
    title = "TFLite"
    suffix = ".tflite"
    precisions = (Precision.fp32, Precision.fp16, Precision.int8, Precision.int8_static, Precision.int8_dynamic)
    int8_kernel_archs = ("arm64", "armv7", "x86_64")
    sources = ("pytorch", "tflite")
    int8_recipes = {
        "attention": (Precision.int8_dynamic, "dynamic-range INT8 (ai-edge-quantizer): PT2E static INT8 does not "
                      "take the int64 token inputs of text models"),
        "mixed": _PT2E, "convolutional": _PT2E, "dense": _PT2E,
    }

    def no_route(self, source, dynamic_batch: bool) -> str | None:
        if source.kind == "pytorch" and dynamic_batch:
            return "TFLite export needs static shapes (drop --dynamic-batch)"
        return super().no_route(source, dynamic_batch)

    def plan(self, listed, context, source, dynamic_batch) -> list[CandidatePlan]:
        if source.kind == "tflite":  # a given file: benchmarked (and validated on devices) as it is
            return [CandidatePlan(self.name, source.precision, (PlannedStep("copy", {"file": source.path.name}),))]
        if source.kind == "pytorch" and context.model_kind is None:  # no ONNX graph built: read the modules
            context.model_kind = module_kind(source.module)
        return super().plan(listed, context, source, dynamic_batch)

    def plan_steps(self, precision: Precision, context) -> list[PlannedStep]:
        return [PlannedStep("litert_torch.convert", {"precision": precision.value,
                                                     "channels_last_inputs": context.profile.channels_last_io})]

    def build_candidate(self, candidate: Candidate, plan: CandidatePlan, run: BuildRun) -> None:
        if run.source.kind == "tflite":  # named as it was given: model.tflite
            out_path = run.folder / "model.tflite"
            shutil.copyfile(run.source.path, out_path)
            candidate.artifact = Artifact(out_path, "tflite", plan.precision)
            candidate.runner_options = {"input_names": [s.name for s in run.source.inputs]}
            return
        out_path, label = run.folder / f"model.{plan.precision}.tflite", f"tflite {plan.precision}"
        with run.progress.step(label):
            result = guarded([candidate], label, lambda: _export(run, out_path, Precision(plan.precision)))
        if result is not None:
            candidate.artifact, candidate.steps = result.artifact, [result]
            candidate.runner_options = self.runner_options(plan, run.context)

    def runner_options(self, plan: CandidatePlan, context) -> dict:
        return {"input_names": [s.name for s in context.inputs],
                "channels_last_inputs": context.profile.channels_last_io}


def _export(run: BuildRun, out_path, precision: Precision):
    from ..steps.tflite_export import export_tflite  # litert-torch is the heavy ``tflite`` extra

    return export_tflite(run.source, out_path, precision, run.context,
                         channels_last=run.context.profile.channels_last_io)
