"""Build candidates per format: the ONNX chain (export, prepare, simplify, optimize, quantize) and the TFLite route.

Every step runs under the guard (``guard.py``): a failure never stops the other candidates and never shows a
traceback; it is recorded on the candidates it concerns, with the step and the reason.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ..targets import Precision, TargetProfile
from .candidates import Candidate
from .guard import attempt, guarded
from .model_kind import model_kind, module_kind
from .recipes import concrete_precisions
from .sources import OnnxSource, TorchSource
from .steps import Artifact, StepContext, StepResult, get_step
from .steps.export_onnx import export_onnx

ONNX_PRECISION_STEP = {Precision.fp16: "fp16", Precision.int8_static: "quantize_static",
                       Precision.int8_dynamic: "quantize_dynamic"}
OPTIONAL_STEPS = ("simplify", "fuse_transformer")


def build_onnx(source: TorchSource | OnnxSource, context: StepContext, folder: Path, dynamic_batch: bool,
               simplify: bool, progress) -> tuple[list[Candidate], list[StepResult]]:
    """ONNX candidates for every precision in the profile, plus the common steps that made the FP32 base.

    A failing common step rejects every ONNX candidate (named in the reason); a failing simplification or
    transformer fusion is skipped with its reason recorded (both are clean-ups whose own checks refused the
    result). The graph's model kind (``context.model_kind``) decides whether the transformer fusion runs and what
    a profile's ``int8`` becomes.
    """
    profile: TargetProfile = context.profile
    candidates = [Candidate("onnx", p.value) for p in profile.precisions]
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
    context.model_kind = model_kind(current.path)
    chain = ["prepare"] + (["fuse_transformer"] if context.model_kind.has_attention else []) + (
        ["simplify"] if simplify else []) + (["optimize"] if profile.graph_optimization != "disabled" else [])
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
    candidates = _resolved(profile, context.model_kind, "onnx")
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
    if context.model_kind is None:  # no ONNX graph built: read the kind from the PyTorch modules
        context.model_kind = module_kind(source.module)
    candidates = _resolved(profile, context.model_kind, "tflite")
    for candidate in candidates:
        precision = Precision(candidate.precision)
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


def _resolved(profile: TargetProfile, kind, fmt: str) -> list[Candidate]:
    """One candidate per concrete precision: ``int8`` becomes the model kind's recipe, noted on the candidate."""
    candidates = []
    for precision, note in concrete_precisions(profile.precisions, kind, fmt):
        candidates.append(Candidate(fmt, precision.value, notes=[note] if note else []))
    return candidates


def _export_tflite(source: TorchSource, out_path: Path, precision: Precision, context: StepContext) -> StepResult:
    from .steps.tflite_export import export_tflite

    return export_tflite(source, out_path, precision, context, channels_last=context.profile.channels_last_io)
