"""OpenVINO: IRs converted from the shared FP32 ONNX model; FP32, bf16 (where the CPU has bf16 arithmetic) and
NNCF static INT8, rescued with asymmetric activations, then by NNCF's accuracy-aware mode; where the CPU has bf16,
also that INT8 IR with its float remainder run in bf16 (``int8_bf16``: quantized once, gated and timed as its own
candidate). x86-64 only (its CPU plugin's kernels)."""

from __future__ import annotations

import shutil
from dataclasses import replace

from ...runtime.ir_bundle import artifact_files
from ...runtime.openvino import cpu_capabilities
from ...targets import Precision
from ..candidates import Candidate
from ..guard import attempt, guarded
from ..rescue import rescue_openvino_int8
from ..steps import Artifact
from ..steps.openvino_convert import OpenVinoConvert
from ..steps.openvino_quantize import OpenVinoQuantize
from .base import BuildRun, CandidatePlan, PlannedStep, Route

# OpenVINO has one INT8 route, NNCF post-training static quantization (FakeQuantize ops the CPU plugin runs as
# int8 kernels); attention models get NNCF's transformer preset, so ``int8`` is int8_static whatever the kind.
_NNCF = "NNCF static INT8 (calibrated FakeQuantize)"
_BF16_HINT = (Precision.bf16, Precision.int8_bf16)  # compiled with the bf16 hint; the rest with f32
_SAME_IR = "the INT8 IR compiled with the bf16 hint, so that the layers it left in float may run in bf16"


class OpenVinoRoute(Route):
    name = "openvino"
    title = "OpenVINO"
    suffix = ".xml"
    precisions = (Precision.fp32, Precision.bf16, Precision.int8, Precision.int8_static, Precision.int8_bf16)
    typical_build_s = {"fp32": 0.2, "bf16": 0.2, "int8_static": 5.0, "int8_bf16": 0.0}
    int8_kernel_archs = ("x86_64",)
    target_archs = ("x86_64", "any")
    sources = ("pytorch", "onnx")
    float_onnx_sources = ("pytorch", "onnx")
    rescue_summary = ("asymmetric activations (NNCF's mixed preset), then NNCF's accuracy-aware mode (the costliest "
                      "layers back to float, up to a quarter, or what its lead pays for)")
    int8_recipes = {
        "attention": (Precision.int8_static, "NNCF static INT8 with the transformer preset (model_type=TRANSFORMER): "
                      "OpenVINO has no dynamic INT8 route"),
        "mixed": (Precision.int8_static, "NNCF static INT8 (calibrated FakeQuantize; convolutions dominate, so "
                  "NNCF's default preset): OpenVINO has no dynamic INT8 route"),
        "convolutional": (Precision.int8_static, _NNCF),
        "dense": (Precision.int8_static, _NNCF),
    }

    def precision_excluded(self, precision, context) -> str | None:
        """bf16 (and INT8 with a bf16 remainder) only where this host's CPU runs it: the gate must run what the
        device will run."""
        if precision not in _BF16_HINT:
            return None
        capabilities, missing = attempt("openvino", cpu_capabilities)
        if capabilities is None:
            return missing
        if "BF16" not in capabilities:
            return (f"this host's CPU has no bf16 arithmetic (OpenVINO lists {', '.join(capabilities)}), so its "
                    "accuracy cannot be gated here")
        return None

    def concrete(self, listed, kind):
        """As every route resolves ``int8``; ``int8_bf16`` says what it is."""
        return [(precision, _SAME_IR if precision == Precision.int8_bf16 else note)
                for precision, note in super().concrete(listed, kind)]

    def plan(self, listed, context, source, dynamic_batch) -> list[CandidatePlan]:
        """As every route plans, except that ``int8_bf16`` copies the ``int8_static`` IR where that is built too:
        NNCF quantizes once."""
        plans = super().plan(listed, context, source, dynamic_batch)
        static = next((p for p in plans if p.precision == Precision.int8_static and not p.excluded), None)
        if static is None:
            return plans
        copy = (PlannedStep("copy", {"ir_of": static.name}),)
        return [replace(p, steps=copy) if p.precision == Precision.int8_bf16 and not p.excluded else p
                for p in plans]

    def plan_steps(self, precision: Precision, context) -> list[PlannedStep]:
        if precision in (Precision.int8_static, Precision.int8_bf16):
            kind = context.model_kind
            preset = "transformer" if kind is not None and kind.kind == "attention" else "default"
            return [PlannedStep("openvino_quantize", {"method": "nncf.quantize", "model_type": preset,
                                                      "samples": context.profile.quantization.calibration_samples},
                                OpenVinoQuantize)]
        return [PlannedStep("openvino_convert", {"precision": precision.value},
                            lambda: OpenVinoConvert(precision.value))]

    def build_candidate(self, candidate: Candidate, plan: CandidatePlan, run: BuildRun) -> None:
        """A ``copy`` plan takes a copy of the IR it names (a copy: a rescue rewrites its own candidate's file)."""
        if plan.steps[0].name != "copy":
            super().build_candidate(candidate, plan, run)
            return
        same = run.built[plan.steps[0].settings["ir_of"]]
        if same.artifact is None:
            candidate.reject(same.failure or "conversion", f"{same.name}, whose IR it runs, failed: {same.reason}")
            return
        xml = run.folder / f"model.{plan.precision}{self.suffix}"
        with run.progress.step(f"{self.name} {plan.precision}: the {same.name} IR"):
            for source in artifact_files(same.artifact.path):
                shutil.copyfile(source, xml.with_suffix(source.suffix))
        candidate.artifact = Artifact(xml, self.name, same.artifact.precision)
        candidate.steps = [replace(step, artifact=candidate.artifact, seconds=0.0,
                                   details={**step.details, "ir_of": same.name}) for step in same.steps]
        candidate.runner_options = self.runner_options(plan, run.context)
        execution = guarded([candidate], f"{self.name} {plan.precision} compile",
                            lambda: candidate.runner(run.context.profile.threads).execution_info(), "runtime")
        if execution is not None and "bf16" not in execution["float_remainder_precisions"]:
            candidate.execution = execution
            candidate.reject("speed", f"the same compiled model as {same.name}: under the bf16 hint no layer of its "
                                      f"float remainder runs in bf16 ({execution['float_remainder_precisions']})")

    def runner_options(self, plan: CandidatePlan, context) -> dict:
        return {"inference_precision": "bf16" if plan.precision in _BF16_HINT else "f32"}

    def rescue(self, precision: str, source_kind: str):
        """Asymmetric activations, then NNCF's accuracy-aware mode, for ``int8_static``; asymmetric activations
        only for ``int8_bf16``, which runs a copy of that IR: a second search on the same IR would spend the rescue
        budget twice on one quantization."""
        return rescue_openvino_int8 if precision in ("int8_static", "int8_bf16") else None
