"""OpenVINO: IRs converted from the shared FP32 ONNX model; FP32, bf16 (where the CPU has bf16 arithmetic) and
NNCF static INT8, rescued by NNCF's accuracy-aware mode. x86-64 only (its CPU plugin's kernels)."""

from __future__ import annotations

from ...runtime.openvino import cpu_capabilities
from ...targets import Precision
from ..guard import attempt
from ..rescue import rescue_openvino_int8
from ..steps.openvino_convert import OpenVinoConvert
from ..steps.openvino_quantize import OpenVinoQuantize
from .base import CandidatePlan, PlannedStep, Route

# OpenVINO has one INT8 route, NNCF post-training static quantization (FakeQuantize ops the CPU plugin runs as
# int8 kernels); attention models get NNCF's transformer preset, so ``int8`` is int8_static whatever the kind.
_NNCF = "NNCF static INT8 (calibrated FakeQuantize)"


class OpenVinoRoute(Route):
    name = "openvino"
    title = "OpenVINO"
    suffix = ".xml"
    precisions = (Precision.fp32, Precision.bf16, Precision.int8, Precision.int8_static)
    int8_kernel_archs = ("x86_64",)
    target_archs = ("x86_64", "any")
    sources = ("pytorch", "onnx")
    float_onnx_sources = ("pytorch", "onnx")
    rescue_summary = "NNCF's accuracy-aware mode (the costliest layers back to float, up to a quarter)"
    int8_recipes = {
        "attention": (Precision.int8_static, "NNCF static INT8 with the transformer preset (model_type=TRANSFORMER): "
                      "OpenVINO has no dynamic INT8 route"),
        "mixed": (Precision.int8_static, "NNCF static INT8 (calibrated FakeQuantize; convolutions dominate, so "
                  "NNCF's default preset): OpenVINO has no dynamic INT8 route"),
        "convolutional": (Precision.int8_static, _NNCF),
        "dense": (Precision.int8_static, _NNCF),
    }

    def precision_excluded(self, precision, context) -> str | None:
        """bf16 only where this host's CPU runs it: the gate must run what the device will run."""
        if precision != Precision.bf16:
            return None
        capabilities, missing = attempt("openvino", cpu_capabilities)
        if capabilities is None:
            return missing
        if "BF16" not in capabilities:
            return (f"this host's CPU has no bf16 arithmetic (OpenVINO lists {', '.join(capabilities)}), so its "
                    "accuracy cannot be gated here")
        return None

    def plan_steps(self, precision: Precision, context) -> list[PlannedStep]:
        if precision == Precision.int8_static:
            kind = context.model_kind
            preset = "transformer" if kind is not None and kind.kind == "attention" else "default"
            return [PlannedStep("openvino_quantize", {"method": "nncf.quantize", "model_type": preset,
                                                      "samples": context.profile.quantization.calibration_samples},
                                OpenVinoQuantize)]
        return [PlannedStep("openvino_convert", {"precision": precision.value},
                            lambda: OpenVinoConvert(precision.value))]

    def runner_options(self, plan: CandidatePlan, context) -> dict:
        return {"inference_precision": "bf16" if plan.precision == "bf16" else "f32"}

    def rescue(self, precision: str, source_kind: str):
        return rescue_openvino_int8 if precision == "int8_static" else None
