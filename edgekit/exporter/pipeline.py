"""``edgekit.export``: source -> candidates per format and precision -> accuracy gate -> latency -> folder."""

from __future__ import annotations

import platform
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..agent.client import AgentClient, check_url, require_token
from ..agent.emulation import emulation
from ..data import SampleSet, load_samples, synthetic_samples
from ..errors import AccuracyError, ExportError, InputError
from ..progress import SilentProgress
from ..runtime.onnxrt import OnnxRunner
from ..specs import InputSpec, parse_input_spec
from ..targets import Format, Precision, TargetProfile, load_target, normalized_arch
from .artifact_dir import StagedFolder
from .builders import build_onnx, build_tflite
from .candidates import (
    PROVISIONAL_RULE,
    REJECTED,
    Candidate,
    choose,
    choose_by_rule,
    gate,
    measure_latencies,
    measure_on_agent,
    run_samples,
)
from .manifest import build_manifest, cpu_name
from .rescue import rescue_static_int8
from .sources import OnnxSource, TfliteSource, TorchSource, load_source
from .steps import Artifact, StepContext

SYNTHETIC_SAMPLES = 32
NOT_BENCHMARKED_RULE = "the first passing candidate in profile order (not benchmarked)"


@dataclass
class ExportResult:
    out_dir: Path
    manifest: dict[str, Any]
    candidates: list[Candidate] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.manifest["status"] == "passed"

    @property
    def selected(self) -> Candidate | None:
        return next((c for c in self.candidates if c.status == "selected"), None)


def export(model: str, target: str | Path | TargetProfile = "x86", *, out: str | Path | None = None,
           inputs: list[str | InputSpec] | None = None, calib: str | Path | None = None,
           val: str | Path | None = None, format: str | None = None, dynamic_batch: bool = False,
           simplify: bool = True, accuracy: dict[str, float | None] | None = None, benchmark: bool = True,
           rescue: bool = True, overwrite: bool = False, agent: str | None = None, token: str | None = None,
           token_file: str | Path | None = None, progress: SilentProgress | None = None) -> ExportResult:
    """Export ``model`` for ``target`` into an artifact folder.

    ``format``: ``onnx`` or ``tflite`` build that format and every candidate must pass; ``auto`` (the default
    when the profile allows several formats) builds all allowed formats and selects the fastest candidate that
    passes. The folder is written either way (failing models under ``rejected/``) so the figures can be read;
    then ``AccuracyError``/``ExportError`` is raised if the run failed. With ``agent`` (a device's agent URL),
    latency is measured on that device instead of this host, so the choice is made where the model will run.
    Latency from another architecture than the target's, or from an emulator, decides nothing: the
    recommendation is then provisional (``manifest["choice"]``), until ``edgekit validate --all`` measures it.
    """
    progress = progress or SilentProgress()
    profile = target if isinstance(target, TargetProfile) else load_target(target)
    profile = profile.with_accuracy(**(accuracy or {}))
    formats, fmt = _resolve_formats(format, profile)
    client = _agent_client(agent, token, token_file) if agent else None
    specs = [parse_input_spec(s) if isinstance(s, str) else s for s in inputs or []]
    if dynamic_batch:
        specs = [s.with_dynamic_batch() for s in specs]
    with progress.step("load model"):
        source = load_source(model, specs or None)
    specs = source.inputs if not dynamic_batch else [s.with_dynamic_batch() for s in source.inputs]
    _check_source_formats(source, formats, fmt)
    out_dir = Path(out) if out else Path("edgekit-out") / f"{_model_stem(source)}-{profile.name}"
    calibration, validation, data_notes = _load_data(calib, val, specs, progress)
    staged = StagedFolder(out_dir, overwrite=overwrite)
    try:
        context = StepContext(profile=profile, inputs=specs, calibration=calibration)
        candidates, common_steps, float_onnx = _build(source, context, formats, staged.path, dynamic_batch,
                                                      simplify, progress)
        if not any(c.artifact for c in candidates):
            raise _failure(candidates, fmt, None)
        notes = _evaluate(source, candidates, context, validation, float_onnx, rescue and fmt != "tflite", progress)
        measured_on = _measure(candidates, validation, profile, client, progress) if benchmark else None
        choice, basis_notes = _choice_basis(profile, measured_on)
        if choice["rule"] == PROVISIONAL_RULE:
            selected, choice_notes = choose_by_rule(candidates)
        else:
            selected, choice_notes = choose(candidates, auto=fmt == "auto")
        notes += choice_notes + basis_notes
        status = _status(candidates, selected, fmt)
        for candidate in candidates:
            if candidate.status == REJECTED and candidate.artifact is not None:
                _move_to_rejected(candidate, staged.path)
        data = {"calibration": calibration.describe(), "validation": validation.describe(), "notes": data_notes}
        manifest = build_manifest(source=source, specs=specs, profile=profile, fmt=fmt, data=data,
                                  common_steps=common_steps, candidates=candidates, selected=selected, notes=notes,
                                  timings=progress.timings, status=status, root=staged.path, measured_on=measured_on,
                                  choice=choice)
        staged.write_json("manifest.json", manifest)
        shutil.rmtree(staged.path / "work", ignore_errors=True)
        final = staged.commit()
    except BaseException:
        staged.discard()
        raise
    for candidate in candidates:
        candidate.relocate(staged.path, final)
    result = ExportResult(final, manifest, candidates)
    if status != "passed":
        raise _failure(candidates, fmt, final)
    return result


def _resolve_formats(fmt: str | None, profile: TargetProfile) -> tuple[list[str], str]:
    allowed = [f.value for f in profile.formats]
    valid = [f.value for f in Format]
    if fmt is None:
        fmt = "auto" if len(allowed) > 1 else allowed[0]
    if fmt not in valid:
        raise InputError(f"unknown format '{fmt}'; valid formats: {', '.join(valid)}", hint="use --format auto")
    if fmt == "auto":
        return allowed, fmt
    if fmt not in allowed:
        raise InputError(f"target '{profile.name}' does not allow format '{fmt}' (it allows {allowed})",
                         hint="choose another target or format, or add the format to the profile")
    return [fmt], fmt


def _check_source_formats(source, formats: list[str], fmt: str) -> None:
    if isinstance(source, OnnxSource) and fmt == "tflite":
        raise InputError("an .onnx model cannot be converted to TFLite by edgekit",
                         hint="export from the PyTorch model instead, or use --format onnx")
    if isinstance(source, TfliteSource) and fmt == "onnx":
        raise InputError("a .tflite model cannot be converted to ONNX by edgekit",
                         hint="use --format tflite (the file is validated and benchmarked as it is)")


def _model_stem(source) -> str:
    if source.path is not None:
        return Path(source.path).stem
    return source.reference.rpartition(":")[2] or "model"


def _load_data(calib, val, specs: list[InputSpec], progress) -> tuple[SampleSet, SampleSet, list[str]]:
    notes = []
    calibration = load_samples(calib, specs) if calib else None
    validation = load_samples(val, specs) if val else None
    if calibration is None and validation is None:
        notes.append(f"no --calib/--val data: using {SYNTHETIC_SAMPLES} synthetic random inputs for calibration "
                     "and validation; accuracy figures on synthetic data are weak evidence")
        calibration = validation = synthetic_samples(specs, SYNTHETIC_SAMPLES)
    elif validation is None:
        notes.append("no --val data: validating on the calibration data, which overstates INT8 accuracy")
        validation = calibration
    elif calibration is None:
        notes.append("no --calib data: calibrating on the validation data, which overstates INT8 accuracy")
        calibration = validation
    for note in notes:
        progress.note(note)
    return calibration, validation, notes


def _build(source, context: StepContext, formats: list[str], folder: Path, dynamic_batch: bool, simplify: bool,
           progress) -> tuple[list[Candidate], list, Path | None]:
    """Candidates in profile order of formats; returns them, the common ONNX steps and the FP32 ONNX path."""
    if isinstance(source, TfliteSource):
        return [_given_tflite(source, folder)], [], None
    candidates: list[Candidate] = []
    common: list = []
    float_onnx = None
    for fmt in formats:
        if fmt == Format.onnx.value:
            built, common = build_onnx(source, context, folder, dynamic_batch, simplify, progress)
            candidates += built
            float_onnx = next((c.artifact.path for c in built if c.precision == "fp32" and c.artifact), None)
        elif isinstance(source, OnnxSource):
            candidates += [_skipped(fmt, p, "an .onnx source cannot be converted to TFLite") for p in
                           context.profile.precisions]
        elif dynamic_batch:
            candidates += [_skipped(fmt, p, "TFLite export needs static shapes (drop --dynamic-batch)")
                           for p in context.profile.precisions]
        else:
            candidates += build_tflite(source, context, folder, progress)
    return candidates, common, float_onnx


def _given_tflite(source: TfliteSource, folder: Path) -> Candidate:
    """A .tflite MODEL is taken as it is: copied into the folder to be benchmarked (and validated on devices)."""
    path = folder / "model.tflite"
    shutil.copyfile(source.path, path)
    return Candidate("tflite", source.precision, Artifact(path, "tflite", source.precision),
                     runner_options={"input_names": [s.name for s in source.inputs]})


def _skipped(fmt: str, precision: Precision, reason: str) -> Candidate:
    candidate = Candidate(fmt, precision.value)
    candidate.reject("conversion", reason)
    return candidate


def _evaluate(source, candidates, context, validation, float_onnx, rescue: bool, progress) -> list[str]:
    """Gate every built candidate against the original; rescue failing static INT8 ONNX candidates."""
    built = [c for c in candidates if c.artifact is not None]
    if isinstance(source, TfliteSource):
        return ["the source is a .tflite file: there is no original to compare it with, so no accuracy gate ran"]
    if not built:
        return []
    profile = context.profile
    with progress.step(f"accuracy gate on {len(validation)} samples"):
        if isinstance(source, TorchSource):
            reference = [source.run(sample) for sample in validation]
        else:
            reference = run_samples(OnnxRunner(source.path, threads=profile.threads, optimization="disabled"),
                                    validation)
        for candidate in built:
            gate(candidate, reference, validation, profile.accuracy, profile.threads)
    for candidate in built:
        if (rescue and candidate.failure == "accuracy" and candidate.name == "onnx/int8_static"
                and float_onnx is not None):
            rescue_static_int8(candidate, context, reference, validation, float_onnx, progress)
    return []


def _agent_client(url: str, token: str | None, token_file) -> AgentClient:
    """A client for ``--agent``, checked to be reachable before any export work starts."""
    client = AgentClient(check_url(url), require_token(token, token_file))
    client.health()
    return client


def _measure(candidates: list[Candidate], validation: SampleSet, profile: TargetProfile, client, progress) -> dict:
    """Latency of every usable candidate, on this host or on the agent's device; returns where it was measured
    (with how that machine runs: ``emulated`` and the evidence when it is an emulator)."""
    usable = [c for c in candidates if c.usable]
    sample = next(iter(validation))
    if client is None:
        with progress.step(f"host latency ({profile.threads} threads)"):
            measure_latencies(usable, sample, profile.threads)
        emulated = emulation()
        return {"where": "host", "arch": platform.machine(), "cpu": cpu_name(), "emulated": emulated["emulated"],
                "emulation": emulated}
    with progress.step(f"device latency on {client.url} ({profile.threads} threads)"):
        info = client.info()
        measure_on_agent(usable, client, sample, profile.threads)
    return {"where": "device", "agent": client.url, "arch": info["arch"], "cpu": info["cpu"],
            "emulated": bool(info.get("emulated")), "emulation": info.get("emulation"),
            "conditions": info["conditions"]}


def _choice_basis(profile: TargetProfile, measured_on: dict | None) -> tuple[dict, list[str]]:
    """Whether the latencies measured may choose: only on the target's architecture, and never under emulation.
    Otherwise the choice is provisional, by ``PROVISIONAL_RULE``, until a device measures it (validate --all).
    Returns the manifest's ``choice`` and the notes to print."""
    if measured_on is None:  # choose() then keeps the first passing candidate in profile order
        return {"provisional": True, "rule": NOT_BENCHMARKED_RULE, "why": "not benchmarked (--no-benchmark)"}, []
    where = f"this {measured_on['where']} ({measured_on['arch']})"
    arch = normalized_arch(measured_on["arch"])
    if measured_on.get("emulated"):
        why = f"latency was measured on {where} under emulation, which is not the target's latency"
    elif profile.arch not in ("any", arch):
        why = f"latency was measured on {where}, not on the {profile.arch} target"
    else:
        return {"provisional": False, "rule": f"the fastest passing candidate by p50 on {where}", "why": None}, []
    note = (f"{why}: it is information only (no candidate rejected for speed, every passing one kept) and the "
            f"recommendation is provisional; run `edgekit validate --all` against the device's agent (or export "
            f"with --agent) to make the measured choice")
    return {"provisional": True, "rule": PROVISIONAL_RULE, "why": why}, [note]


def _status(candidates: list[Candidate], selected: Candidate | None, fmt: str) -> str:
    """auto passes when something was selected; an explicit format needs every candidate to pass."""
    if fmt == "auto":
        return "passed" if selected is not None else "failed"
    return "passed" if all(c.usable for c in candidates) else "failed"


def _failure(candidates: list[Candidate], fmt: str, folder: Path | None) -> Exception:
    """The error for a failed run; ``folder`` is None when nothing was built (and nothing written)."""
    failed = [c for c in candidates if c.status == REJECTED and c.failure != "speed"]
    summary = "; ".join(f"{c.name}: {c.reason}" for c in failed)
    prefix = "no candidate passed: " if fmt == "auto" else ""
    if folder is None:
        return ExportError(prefix + summary, hint="replace the unsupported op, or export the model to ONNX or "
                                                  "TFLite yourself and pass that file")
    hint = f"figures in {folder / 'manifest.json'}"
    if any(c.failure == "accuracy" for c in failed):
        return AccuracyError(prefix + summary, figures={c.name: c.accuracy.to_dict() for c in failed if c.accuracy},
                             hint=hint + "; relax the budget with --cosine-min/--top1-min, give better calibration "
                                         "data, or drop that precision from the profile")
    return ExportError(prefix + summary, hint=hint)


def _move_to_rejected(candidate: Candidate, folder: Path) -> None:
    rejected = folder / "rejected"
    rejected.mkdir(exist_ok=True)
    target = rejected / candidate.artifact.path.name
    shutil.move(candidate.artifact.path, target)
    candidate.relocate(candidate.artifact.path.parent, rejected)
