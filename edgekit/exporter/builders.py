"""Build candidates per format: the ONNX chain (export, simplify, optimize, quantize) and the TFLite route.

A conversion failure never stops the other candidates: it is recorded on the candidate with its reason.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ..errors import ExportError
from ..targets import Precision, TargetProfile
from .candidates import Candidate
from .sources import OnnxSource, TorchSource
from .steps import Artifact, StepContext, StepResult, get_step
from .steps.export_onnx import export_onnx

ONNX_PRECISION_STEP = {Precision.fp16: "fp16", Precision.int8_static: "quantize_static",
                       Precision.int8_dynamic: "quantize_dynamic"}


def build_onnx(source: TorchSource | OnnxSource, context: StepContext, folder: Path, dynamic_batch: bool,
               simplify: bool, progress) -> tuple[list[Candidate], list[StepResult]]:
    """ONNX candidates for every precision in the profile, plus the common steps that made the FP32 base."""
    profile: TargetProfile = context.profile
    candidates = [Candidate("onnx", p.value) for p in profile.precisions]
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
    for precision in profile.precisions:
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
