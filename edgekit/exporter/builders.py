"""Build candidates per format: the ONNX chain (export, simplify, optimize, quantize), the TFLite route, and
OpenVINO IRs converted from the FP32 ONNX model.

A conversion failure never stops the other candidates: it is recorded on the candidate with its reason.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ..errors import ExportError
from ..runtime.openvino import cpu_capabilities
from ..targets import Precision, TargetProfile
from .candidates import Candidate
from .sources import OnnxSource, TorchSource
from .steps import Artifact, StepContext, StepResult, get_step
from .steps.export_onnx import export_onnx
from .steps.openvino_convert import OpenVinoConvert
from .steps.openvino_quantize import OpenVinoQuantize

ONNX_PRECISION_STEP = {Precision.fp16: "fp16", Precision.int8_static: "quantize_static",
                       Precision.int8_dynamic: "quantize_dynamic"}
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
    """ONNX candidates for every precision in the profile, plus the common steps that made the FP32 base."""
    profile: TargetProfile = context.profile
    candidates = [Candidate("onnx", p.value) for p in format_precisions("onnx", profile)]
    work = folder / "work"
    work.mkdir(exist_ok=True)
    common: list[StepResult] = []
    try:
        if isinstance(source, TorchSource):
            with progress.step("export to ONNX"):
                common.append(export_onnx(source, work / "exported.onnx", context, dynamic_batch))
            current = common[-1].artifact
        else:
            current = Artifact(source.path, "onnx", "fp32")
        chain = (["simplify"] if simplify else []) + (["optimize"] if profile.graph_optimization != "disabled" else [])
        for name in chain:
            with progress.step(name):
                common.append(get_step(name).run(current, work / f"{name}.onnx", context))
            current = common[-1].artifact
    except ExportError as error:
        for candidate in candidates:
            candidate.reject("conversion", f"conversion failed: {error.message}")
        return candidates, common
    base = Artifact(folder / "model.fp32.onnx", "onnx", "fp32")
    shutil.copyfile(current.path, base.path)
    for candidate in candidates:
        if candidate.precision == Precision.fp32.value:
            candidate.artifact = base
            continue
        step = get_step(ONNX_PRECISION_STEP[Precision(candidate.precision)])
        try:
            with progress.step(f"onnx {step.name}"):
                result = step.run(base, folder / f"model.{candidate.precision}.onnx", context)
        except ExportError as error:
            candidate.reject("conversion", f"conversion failed: {error.message}")
            continue
        candidate.artifact, candidate.steps = result.artifact, [result]
    return candidates, common


def build_tflite(source: TorchSource, context: StepContext, folder: Path, progress) -> list[Candidate]:
    """TFLite candidates via litert-torch (needs the ``tflite`` extra; a missing extra rejects them, says why)."""
    from .steps.tflite_export import export_tflite

    profile: TargetProfile = context.profile
    layout = "NHWC" if profile.channels_last_io else "NCHW"
    candidates = []
    for precision in format_precisions("tflite", profile):
        candidate = Candidate("tflite", precision.value)
        candidates.append(candidate)
        try:
            with progress.step(f"tflite {precision.value}"):
                result = export_tflite(source, folder / f"model.{precision.value}.tflite", precision, context,
                                       channels_last=profile.channels_last_io)
        except ExportError as error:
            candidate.reject("conversion", f"conversion failed: {error.message}")
            continue
        candidate.artifact, candidate.steps = result.artifact, [result]
        candidate.runner_options = {"input_names": [s.name for s in context.inputs],
                                    "channels_last_inputs": layout == "NHWC"}
    return candidates


def build_openvino(float_onnx: Path | None, failure: str | None, context: StepContext, folder: Path,
                   progress) -> tuple[list[Candidate], list[str]]:
    """OpenVINO IR candidates converted from the FP32 ONNX model (``failure``: why there is none). Needs the
    ``openvino`` extra; a missing extra or a failed conversion rejects only these candidates, and says why.
    bf16 is built only where this host's CPU runs it, because the gate must run what the device will run."""
    precisions, notes = format_precisions("openvino", context.profile), []
    if Precision.bf16 in precisions and float_onnx is not None:
        try:
            capabilities = cpu_capabilities()
        except ExportError as error:
            failure = f"conversion failed: {error.message}"
        else:
            if "BF16" not in capabilities:
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
        try:
            with progress.step(f"openvino {candidate.precision}"):
                result = step.run(Artifact(float_onnx, "onnx", "fp32"), folder / f"model.{candidate.precision}.xml",
                                  context)
        except ExportError as error:
            candidate.reject("conversion", f"conversion failed: {error.message}")
            continue
        candidate.artifact, candidate.steps = result.artifact, [result]
        candidate.runner_options = {"inference_precision": "bf16" if candidate.precision == "bf16" else "f32"}
    return candidates, notes
