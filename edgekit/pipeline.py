"""``edgekit.export``: source -> ONNX -> simplify -> optimize -> per-precision candidates -> gate -> folder."""

from __future__ import annotations

import platform
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import __version__
from .accuracy import AccuracyReport, apply_budget, compare_outputs
from .artifact_dir import StagedFolder
from .data import SampleSet, load_samples, synthetic_samples
from .errors import AccuracyError, InputError
from .progress import SilentProgress
from .runtime.onnxrt import OnnxRunner
from .sources import OnnxSource, TorchSource, load_source, sha256_file
from .specs import InputSpec, parse_input_spec
from .steps import Artifact, StepContext, StepResult, get_step
from .steps.export_onnx import export_onnx
from .targets import Format, Precision, TargetProfile, load_target

MANIFEST_SCHEMA = "edgekit.manifest/1"
SYNTHETIC_SAMPLES = 32
PRECISION_STEP = {Precision.fp16: "fp16", Precision.int8_static: "quantize_static",
                  Precision.int8_dynamic: "quantize_dynamic"}


@dataclass
class Candidate:
    """One produced model with its gate result and host latency."""

    artifact: Artifact
    steps: list[StepResult]
    accuracy: AccuracyReport | None = None
    latency: dict[str, Any] | None = None
    rejected: str | None = None

    @property
    def passed(self) -> bool:
        return self.rejected is None

    def relocate(self, old_root: Path, new_root: Path) -> None:
        path = new_root / self.artifact.path.relative_to(old_root)
        self.artifact = Artifact(path, self.artifact.format, self.artifact.precision)

    def to_dict(self, root: Path) -> dict[str, Any]:
        path = self.artifact.path
        return {"file": path.relative_to(root).as_posix(),
                "format": self.artifact.format, "precision": self.artifact.precision,
                "size_bytes": path.stat().st_size, "sha256": sha256_file(path), "passed": self.passed,
                "rejected_reason": self.rejected, "steps": [s.to_dict() for s in self.steps],
                "accuracy": self.accuracy.to_dict() if self.accuracy else None, "latency_host": self.latency}


@dataclass
class ExportResult:
    out_dir: Path
    manifest: dict[str, Any]
    candidates: list[Candidate] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.manifest["status"] == "passed"


def export(model: str, target: str | Path | TargetProfile = "x86", *, out: str | Path | None = None,
           inputs: list[str | InputSpec] | None = None, calib: str | Path | None = None,
           val: str | Path | None = None, format: str = "onnx", dynamic_batch: bool = False,
           simplify: bool = True, accuracy: dict[str, float | None] | None = None, benchmark: bool = True,
           overwrite: bool = False, progress: SilentProgress | None = None) -> ExportResult:
    """Export ``model`` for ``target`` into an artifact folder; raises ``AccuracyError`` if a budget breaks.

    The folder is written either way (failing models under ``rejected/``) so the figures can be inspected.
    """
    progress = progress or SilentProgress()
    profile = target if isinstance(target, TargetProfile) else load_target(target)
    profile = profile.with_accuracy(**(accuracy or {}))
    _check_format(format, profile)
    specs = [parse_input_spec(s) if isinstance(s, str) else s for s in inputs or []]
    if dynamic_batch:
        specs = [s.with_dynamic_batch() for s in specs]
    with progress.step("load model"):
        source = load_source(model, specs or None)
    specs = source.inputs if not dynamic_batch else [s.with_dynamic_batch() for s in source.inputs]
    out_dir = Path(out) if out else Path("edgekit-out") / f"{_model_stem(source)}-{profile.name}"
    calibration, validation, data_notes = _load_data(calib, val, specs, progress)
    staged = StagedFolder(out_dir, overwrite=overwrite)
    try:
        candidates, common_steps = _build(source, specs, profile, calibration, staged.path, dynamic_batch,
                                          simplify, progress)
        _gate(source, candidates, validation, profile, progress)
        if benchmark:
            _benchmark(candidates, validation, profile, progress)
        for candidate in candidates:
            if not candidate.passed:
                _move_to_rejected(candidate, staged.path)
        manifest = _manifest(source, specs, profile, calibration, validation, data_notes, common_steps,
                             candidates, format, progress, staged.path)
        staged.write_json("manifest.json", manifest)
        shutil.rmtree(staged.path / "work", ignore_errors=True)
        final = staged.commit()
    except BaseException:
        staged.discard()
        raise
    for candidate in candidates:
        candidate.relocate(staged.path, final)
    result = ExportResult(final, manifest, candidates)
    if not result.passed:
        failed = [c for c in candidates if not c.passed]
        raise AccuracyError("; ".join(f"{c.artifact.precision}: {c.rejected}" for c in failed),
                            figures={c.artifact.precision: c.accuracy.to_dict() for c in failed if c.accuracy},
                            hint=f"figures in {final / 'manifest.json'}; relax the budget with --cosine-min/"
                                 "--top1-min, give better calibration data, or drop that precision")
    return result


def _check_format(fmt: str, profile: TargetProfile) -> None:
    valid = [f.value for f in Format]
    if fmt not in valid:
        raise InputError(f"unknown format '{fmt}'; valid formats: {', '.join(valid)}", hint="use --format onnx")
    if fmt != Format.onnx.value:
        raise InputError(f"format '{fmt}' is not available in this version of edgekit; only 'onnx' is",
                         hint="use --format onnx")
    if Format.onnx not in profile.formats:
        raise InputError(f"target '{profile.name}' does not allow format 'onnx' (it allows "
                         f"{[f.value for f in profile.formats]})", hint="choose another target or format")


def _model_stem(source: TorchSource | OnnxSource) -> str:
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


def _build(source, specs, profile: TargetProfile, calibration: SampleSet, folder: Path, dynamic_batch: bool,
           simplify: bool, progress) -> tuple[list[Candidate], list[StepResult]]:
    work = folder / "work"
    work.mkdir()
    context = StepContext(profile=profile, inputs=specs, calibration=calibration)
    common: list[StepResult] = []
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
    fp32_path = folder / "model.fp32.onnx"
    shutil.copyfile(current.path, fp32_path)
    base = Artifact(fp32_path, "onnx", "fp32")
    candidates = []
    for precision in profile.precisions:
        if precision == Precision.fp32:
            candidates.append(Candidate(base, []))
            continue
        step = get_step(PRECISION_STEP[precision])
        with progress.step(f"{step.name}"):
            result = step.run(base, folder / f"model.{precision.value}.onnx", context)
        candidates.append(Candidate(result.artifact, [result]))
    return candidates, common


def _gate(source, candidates: list[Candidate], validation: SampleSet, profile: TargetProfile, progress) -> None:
    with progress.step(f"accuracy gate on {len(validation)} samples"):
        reference_run = source.run if isinstance(source, TorchSource) else \
            OnnxRunner(source.path, threads=profile.threads, optimization="disabled").run
        reference = [reference_run(sample) for sample in validation]
        for candidate in candidates:
            runner = OnnxRunner(candidate.artifact.path, threads=profile.threads)
            outputs = [runner.run(sample) for sample in validation]
            report = compare_outputs(reference, outputs, runner.output_names, validation.labels)
            candidate.accuracy = apply_budget(report, profile.accuracy)
            if not report.passed:
                candidate.rejected = "accuracy: " + "; ".join(report.violations)


def _benchmark(candidates: list[Candidate], validation: SampleSet, profile: TargetProfile, progress) -> None:
    sample = next(iter(validation))
    with progress.step(f"host latency ({profile.threads} threads)"):
        for candidate in candidates:
            runner = OnnxRunner(candidate.artifact.path, threads=profile.threads)
            candidate.latency = runner.benchmark(sample, warmup=10, runs=30, min_seconds=1.0).to_dict()


def _move_to_rejected(candidate: Candidate, folder: Path) -> None:
    rejected = folder / "rejected"
    rejected.mkdir(exist_ok=True)
    target = rejected / candidate.artifact.path.name
    shutil.move(candidate.artifact.path, target)
    candidate.artifact = Artifact(target, candidate.artifact.format, candidate.artifact.precision)


def _recommend(candidates: list[Candidate]) -> tuple[Candidate | None, list[str]]:
    """The fastest passing candidate on this host, with notes on any precision that did not pay off."""
    passing = [c for c in candidates if c.passed]
    if not passing:
        return None, []
    if any(c.latency is None for c in passing):
        return passing[0], ["not benchmarked: the first passing artifact in profile order is listed"]
    best = min(passing, key=lambda c: c.latency["p50_ms"])
    notes = []
    fp32 = next((c for c in candidates if c.artifact.precision == "fp32" and c.latency), None)
    for c in passing:
        if fp32 and c is not fp32 and c.latency["p50_ms"] >= fp32.latency["p50_ms"]:
            notes.append(f"{c.artifact.precision} is not faster than fp32 on this host "
                         f"({c.latency['p50_ms']:.3f} ms vs {fp32.latency['p50_ms']:.3f} ms p50)")
    return best, notes


def _manifest(source, specs, profile, calibration, validation, data_notes, common_steps, candidates, fmt,
              progress, root: Path) -> dict[str, Any]:
    best, notes = _recommend(candidates)
    host_arch = platform.machine()
    benchmarked = any(c.latency for c in candidates)
    if benchmarked and profile.arch not in ("any", host_arch.replace("aarch64", "arm64")):
        notes.append(f"latency measured on this {host_arch} host, not on the {profile.arch} target: "
                     "run `edgekit validate` on the device before trusting the choice")
    output_names = OnnxRunner(candidates[0].artifact.path).output_names
    return {
        "schema": MANIFEST_SCHEMA,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "status": "passed" if all(c.passed for c in candidates) else "failed",
        "recommended": best.artifact.path.relative_to(root).as_posix() if best else None,
        "format": fmt,
        "source": source.describe(),
        "inputs": [s.to_dict() for s in specs],
        "outputs": output_names,
        "versions": _versions(),
        "host": {"arch": host_arch, "cpu": _cpu_name(), "python": platform.python_version()},
        "target": profile.model_dump(mode="json"),
        "data": {"calibration": calibration.describe(), "validation": validation.describe(), "notes": data_notes},
        "steps": [s.to_dict() for s in common_steps],
        "timings_s": {k: round(v, 3) for k, v in progress.timings.items()},
        "artifacts": [c.to_dict(root) for c in candidates],
        "notes": notes,
    }


def _versions() -> dict[str, str]:
    from importlib import metadata

    versions = {"edgekit": __version__}
    for package in ("onnx", "onnxruntime", "onnxsim", "torch", "numpy"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return versions


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("model name", "Hardware", "Model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"

