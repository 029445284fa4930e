"""Build candidates per format: the ONNX chain (export, prepare, simplify, optimize, quantize), the TFLite route,
and OpenVINO IRs converted from the FP32 ONNX model.

Every step runs under the guard (``guard.py``): a failure never stops the other candidates and never shows a
traceback; it is recorded on the candidates it concerns, with the step and the reason.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ..runtime.openvino import cpu_capabilities
from ..targets import Precision, TargetProfile
from .candidates import Candidate
from .guard import attempt, guarded
from .sources import OnnxSource, TorchSource
from .steps import Artifact, StepContext, StepResult, get_step
from .steps.export_onnx import export_onnx
from .steps.openvino_convert import OpenVinoConvert
from .steps.openvino_quantize import OpenVinoQuantize

ONNX_PRECISION_STEP = {Precision.fp16: "fp16", Precision.int8_static: "quantize_static",
                       Precision.int8_dynamic: "quantize_dynamic"}
OPTIONAL_STEPS = ("simplify",)
_COMMON = (Precision.fp32, Precision.fp16, Precision.int8_static, Precision.int8_dynamic)
FORMAT_PRECISIONS = {"onnx": _COMMON, "tflite": _COMMON,
                     "openvino": (Precision.fp32, Precision.bf16, Precision.int8_static)}


def format_precisions(fmt: str, profile: TargetProfile) -> list[Precision]:
    """The profile's precisions that ``fmt`` has a route to, in profile order."""
    return [p for p in profile.precisions if p in FORMAT_PRECISIONS[fmt]]


def unbuilt_precision_notes(formats: list[str], profile: TargetProfile) -> list[str]:
    """Say which of the profile's precisions a format has no route to (e.g. bf16 outside OpenVINO)."""
    notes = []
    for precision in profile.precisions:
        without = [f for f in formats if precision not in FORMAT_PRECISIONS[f]]
        if without:
            notes.append(f"{precision.value} is not built for {', '.join(without)}: no {precision.value} route in "
                         f"{'that format' if len(without) == 1 else 'those formats'}")
    return notes


def build_onnx(source: TorchSource | OnnxSource, context: StepContext, folder: Path, dynamic_batch: bool,
               simplify: bool, progress) -> tuple[list[Candidate], list[StepResult]]:
    """ONNX candidates for every precision in the profile, plus the common steps that made the FP32 base.

    A failing common step rejects every ONNX candidate (named in the reason); a failing simplification is
    skipped with its reason recorded (onnxsim is a clean-up, and its own check refused the result).
    """
    profile: TargetProfile = context.profile
    candidates = [Candidate("onnx", p.value) for p in format_precisions("onnx", profile)]
    work = folder / "work"
    work.mkdir(exist_ok=True)
    common: list[StepResult] = []
    if isinstance(source, TorchSource):
        with progress.step("export to ONNX"):
            exported = guarded(candidates, "export to ONNX",
                               lambda: export_onnx(source, work / "exported.onnx", context, dynamic_batch))
        if exported is None:
            return candidates, common
        common.append(exported)
    current = common[-1].artifact if common else Artifact(source.path, "onnx", "fp32")
    chain = ["prepare"] + (["simplify"] if simplify else []) + (
        ["optimize"] if profile.graph_optimization != "disabled" else [])
    for name in chain:
        step, out_path = get_step(name), work / f"{name}.onnx"
        with progress.step(name):
            if name in OPTIONAL_STEPS:
                result, reason = attempt(name, lambda: step.run(current, out_path, context))
                if reason is not None:
                    progress.note(f"{name} skipped: {reason}")
                    result = StepResult(name, current, {}, details={"skipped_because": reason})
            else:
                result = guarded(candidates, name, lambda: step.run(current, out_path, context))
        if result is None:
            return candidates, common
        common.append(result)
        current = result.artifact
    base = Artifact(folder / "model.fp32.onnx", "onnx", "fp32")
    shutil.copyfile(current.path, base.path)
    for candidate in candidates:
        if candidate.precision == Precision.fp32.value:
            candidate.artifact = base
            continue
        step = get_step(ONNX_PRECISION_STEP[Precision(candidate.precision)])
        out_path = folder / f"model.{candidate.precision}.onnx"
        with progress.step(f"onnx {step.name}"):
            result = guarded([candidate], f"onnx {step.name}", lambda: step.run(base, out_path, context))
        if result is not None:
            candidate.artifact, candidate.steps = result.artifact, [result]
    return candidates, common


def build_tflite(source: TorchSource, context: StepContext, folder: Path, progress) -> list[Candidate]:
    """TFLite candidates via litert-torch (needs the ``tflite`` extra; a missing extra rejects them, says why)."""
    profile: TargetProfile = context.profile
    candidates = []
    for precision in format_precisions("tflite", profile):
        candidate = Candidate("tflite", precision.value)
        candidates.append(candidate)
        out_path = folder / f"model.{precision.value}.tflite"
        with progress.step(f"tflite {precision.value}"):
            result = guarded([candidate], f"tflite {precision.value}",
                             lambda: _export_tflite(source, out_path, precision, context))
        if result is None:
            continue
        candidate.artifact, candidate.steps = result.artifact, [result]
        candidate.runner_options = {"input_names": [s.name for s in context.inputs],
                                    "channels_last_inputs": profile.channels_last_io}
    return candidates


def _export_tflite(source: TorchSource, out_path: Path, precision: Precision, context: StepContext) -> StepResult:
    from .steps.tflite_export import export_tflite

    return export_tflite(source, out_path, precision, context, channels_last=context.profile.channels_last_io)


def build_openvino(float_onnx: Path | None, failure: str | None, context: StepContext, folder: Path,
                   progress) -> tuple[list[Candidate], list[str]]:
    """OpenVINO IR candidates converted from the FP32 ONNX model (``failure``: why there is none). Needs the
    ``openvino`` extra; a missing extra or a failed conversion rejects only these candidates, and says why.
    bf16 is built only where this host's CPU runs it, because the gate must run what the device will run."""
    precisions, notes = format_precisions("openvino", context.profile), []
    if Precision.bf16 in precisions and float_onnx is not None:
        capabilities, missing = attempt("openvino", cpu_capabilities)
        failure = failure or missing
        if capabilities is not None and "BF16" not in capabilities:
            precisions.remove(Precision.bf16)
            notes.append(f"openvino/bf16 not built: this host's CPU has no bf16 arithmetic (OpenVINO lists "
                         f"{', '.join(capabilities)}), so its accuracy cannot be gated here")
    candidates = [Candidate("openvino", p.value) for p in precisions]
    for candidate in candidates:
        if failure is not None or float_onnx is None:
            candidate.reject("conversion", failure if float_onnx is not None else
                             f"no FP32 ONNX model to convert: {failure}")
            continue
        step = OpenVinoQuantize() if candidate.precision == "int8_static" else OpenVinoConvert(candidate.precision)
        label, out_path = f"openvino {candidate.precision}", folder / f"model.{candidate.precision}.xml"
        with progress.step(label):
            result = guarded([candidate], label,
                             lambda: step.run(Artifact(float_onnx, "onnx", "fp32"), out_path, context))
        if result is not None:
            candidate.artifact, candidate.steps = result.artifact, [result]
            candidate.runner_options = {"inference_precision": "bf16" if candidate.precision == "bf16" else "f32"}
    return candidates, notes
