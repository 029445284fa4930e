"""``edgekit.export``: source -> candidates per format and precision -> accuracy gate -> latency -> folder."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..agent.client import AgentClient, check_url, require_token
from ..agent.conditions import machine
from ..data import SampleSet, load_data, synthetic_samples
from ..data.text import check_vocabulary
from ..errors import AccuracyError, ExportError, InputError
from ..files import is_disk_failure, write_failure
from ..interrupts import record_discarded
from ..progress import SilentProgress
from ..runtime.ir_bundle import artifact_files
from ..runtime import open_runner
from ..runtime.onnxrt import OnnxRunner
from ..specs import InputSpec, parse_input_spec, parse_output_kinds, resolve_output_kinds
from ..targets import TargetProfile, load_target, normalized_arch
from .artifact_dir import StagedFolder
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
from .guard import attempt, guarded
from .late_builds import could_not_win, waits
from .manifest import build_manifest
from .model_kind import module_kind
from .onnx_graph import embedding_rows
from .ownership import run_inputs
from .recipes import recipe_record
from .routes import BuildRun, CandidatePlan, get_route, int8_kernels_on
from .routes.onnx import build_float_onnx
from .schedule import FloatAllowance, fastest_passing, p50, rescue_schedule
from .second_process import SecondProcess
from .shipped_samples import ship_samples
from .sources import OnnxSource, TfliteSource, TorchSource, load_source
from .steps import StepContext

SYNTHETIC_SAMPLES = 32
# typical seconds per candidate of the accuracy gate (and of the original's outputs) and of the host latency (the
# corpus on a 2-core Xeon): the progress estimate's weights for those steps
GATE_S_PER_CANDIDATE = 0.5
LATENCY_S_PER_CANDIDATE = 1.6
DEFAULT_OUT = "edgekit-out/{model}-{target}"
# a candidate whose first timing round is over this many times the fastest passing one's is timed no more: a busy
# moment on a shared 2-core host inflated a round by up to 1.6x (PP-OCRv4 det's bf16 on the Xeon)
OUT_OF_THE_RUNNING = 2.0
# a candidate timed after the first rounds (a late build, a rescued one) is timed again with every passing candidate
# within this ratio of the fastest one, so that the choice compares figures of the same rounds (MobileNetV2: a LiteRT
# INT8 timed alone read 1.92 ms against OpenVINO INT8's 2.19 ms of the first rounds, then 1.14x slower side by side)
CONTENDER_RATIO = 1.25
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
           val: str | Path | None = None, tokenizer: str | Path | None = None, preprocess=None,
           format: str | None = None, dynamic_batch: bool = False,
           outputs: list[str] | dict[str, str] | None = None,
           simplify: bool = True, accuracy: dict[str, float | None] | None = None, benchmark: bool = True,
           rescue: bool = True, overwrite: bool = False, agent: str | None = None, token: str | None = None,
           token_file: str | Path | None = None, rescue_budget_s: float = 60.0,
           progress: SilentProgress | None = None) -> ExportResult:
    """Export ``model`` for ``target`` into an artifact folder.

    ``format``: ``onnx`` or ``tflite`` build that format and every candidate must pass; ``auto`` (the default
    when the profile allows several formats) builds all allowed formats and selects the fastest candidate that
    passes. ``calib``/``val`` are ``.npz`` data, a ``.txt`` file of sentences (with ``tokenizer``: the model's
    ``tokenizer.json`` or its folder) or a folder of images (with ``preprocess``: ``"resize=256,crop=224,..."``, a
    .json/.toml file or a dict; see ``edgekit.data.images.PreprocessSpec``). ``outputs`` declares output kinds
    (``["scores:class"]`` or ``{"scores": "class"}``: class, regression or embedding); undeclared outputs are
    inferred conservatively. The folder is written either way (failing models under ``rejected/``) so the figures
    can be read;
    then ``AccuracyError``/``ExportError`` is raised if the run failed. With ``agent`` (a device's agent URL),
    latency is measured on that device instead of this host, so the choice is made where the model will run.
    Latency from another architecture than the target's, or from an emulator, decides nothing: the
    recommendation is then provisional (``manifest["choice"]``), until ``edgekit validate --all`` measures it.
    """
    progress = progress or SilentProgress()
    profile = target if isinstance(target, TargetProfile) else load_target(target)
    profile = profile.with_accuracy(**(accuracy or {}))
    formats, fmt = resolve_formats(format, profile)
    client = _agent_client(agent, token, token_file) if agent else None
    specs = [parse_input_spec(s) if isinstance(s, str) else s for s in inputs or []]
    if dynamic_batch:
        specs = [s.with_dynamic_batch() for s in specs]
    with progress.step("load model"):
        source = load_source(model, specs or None)
    specs = source.inputs if not dynamic_batch else [s.with_dynamic_batch() for s in source.inputs]
    check_source_route(source, fmt, dynamic_batch)
    declared = outputs if isinstance(outputs, dict) else parse_output_kinds(list(outputs or []))
    kinds = resolve_output_kinds(declared, source.output_names)
    out_dir = output_folder(out or DEFAULT_OUT, model=_model_stem(source), target=profile.name)
    calibration, validation, data_notes = _load_data(calib, val, specs, progress, source, tokenizer=tokenizer,
                                                     preprocess=preprocess)
    staged = StagedFolder(out_dir, overwrite=overwrite,
                          inputs=run_inputs(source.path, calib, val, tokenizer, preprocess))
    for stale in staged.swept:
        progress.note(f"removed {stale.name}, a staging folder left by an interrupted run")
    second_process = SecondProcess(source)  # started by the first build that goes apart
    try:
        context = StepContext(profile=profile, inputs=specs, calibration=calibration,
                              output_names=source.output_names, output_kinds=kinds)
        candidates, run, excluded, waiting = _build(source, context, formats, staged.path, dynamic_batch, simplify,
                                                    progress, wait=benchmark and fmt == "auto",
                                                    second_process=second_process)
        not_built, notes = not_built_records(excluded, formats, profile)
        if not any(c.artifact for c in candidates):  # nothing to time: what waited has nothing to wait for
            candidates, waiting = candidates + _build_plans(waiting, run), []
        if not any(c.artifact for c in candidates):
            raise _failure(candidates, fmt, None, not_built)
        reference = _reference(source, context, validation, progress)
        _gate(candidates, reference, context, validation, progress)
        timed = [c for c in candidates if c.usable or (rescue and _rescuable(c, source.kind))]
        first_timing = _timing(validation, profile, client, progress)
        measured_on = first_timing(timed) if benchmark else None
        timing = _with_contenders(first_timing, candidates)
        choice, basis_notes = _choice_basis(profile, measured_on)
        if waiting:
            late, skipped = _build_late(waiting, candidates, run, reference, context, validation, timing,
                                        not choice["provisional"], rescue, progress)
            candidates[:] = sorted(candidates + late, key=lambda c: formats.index(c.format))  # stable: profile order
            not_built += skipped
            notes += [f"{record['candidate']} not built: {record['reason']}" for record in skipped]
        second_process.close()
        rescue_record = _rescue(candidates, context, validation, reference, run, timing, rescue_budget_s,
                                not choice["provisional"], progress) if rescue else None
        if choice["rule"] == PROVISIONAL_RULE:
            selected, choice_notes = choose_by_rule(candidates, int8_kernels_on(profile.arch))
        else:
            selected, choice_notes = choose(candidates, auto=fmt == "auto")
        notes += choice_notes + basis_notes
        if selected is not None and (needs := get_route(selected.format).device_needs):
            notes.append(f"{selected.name} is recommended: {needs}")
        status = _status(candidates, selected, fmt)
        for candidate in candidates:
            if candidate.status == REJECTED and candidate.artifact is not None:
                _move_to_rejected(candidate, staged.path)
        data = {"calibration": calibration.describe(staged.path), "validation": ship_samples(validation, staged.path),
                "notes": data_notes}
        manifest = build_manifest(source=source, specs=specs, profile=profile, fmt=fmt, data=data,
                                  common_steps=run.common_steps, not_built=not_built, candidates=candidates,
                                  selected=selected, notes=notes,
                                  timings=progress.timings, status=status, root=staged.path, measured_on=measured_on,
                                  choice=choice, model_kind=context.model_kind,
                                  int8_recipe=recipe_record(profile.precisions, context.model_kind, formats),
                                  rescue=rescue_record)
        manifest.write(staged.path)
        shutil.rmtree(staged.path / "work", ignore_errors=True)
        final = staged.commit()
    except BaseException as error:
        second_process.close()  # before the folder it may be writing into is removed
        staged.discard()
        record_discarded(error, staged.dest)
        if is_disk_failure(error):
            raise write_failure(staged.dest, error) from None
        raise
    for candidate in candidates:
        candidate.relocate(staged.path, final)
    result = ExportResult(final, manifest.to_dict(), candidates)
    if status != "passed":
        raise _failure(candidates, fmt, final)
    return result


def resolve_formats(fmt: str | None, profile: TargetProfile) -> tuple[list[str], str]:
    """The routes to build and the mode: ``auto`` (every route the profile lists, the fastest passing one chosen),
    or one route whose every candidate must pass."""
    allowed = list(profile.formats)
    if fmt is None:
        fmt = "auto" if len(allowed) > 1 else allowed[0]
    if fmt == "auto":
        return allowed, fmt
    get_route(fmt)  # an unknown name lists the routes
    if fmt not in allowed:
        raise InputError(f"target '{profile.name}' does not allow format '{fmt}' (it allows {allowed})",
                         hint="choose another target or format, or add the format to the profile")
    return [fmt], fmt


def check_source_route(source, fmt: str, dynamic_batch: bool) -> None:
    """An explicit format with no route from this source is the user's choice to fix, before any work."""
    reason = None if fmt == "auto" else get_route(fmt).no_route(source, dynamic_batch)
    if reason is not None:
        raise InputError(reason, hint="pass another --format (or --format auto), or bring the model in another form")


def output_folder(template: str | Path, **fields: str) -> Path:
    """``--out`` (or ``out`` in edgekit.toml) with ``{model}`` and ``{target}`` filled in, so one project file can
    name a folder per target."""
    try:
        return Path(str(template).format(**fields))
    except (KeyError, IndexError, ValueError) as exc:
        raise InputError(f"output path {str(template)!r} has a placeholder edgekit cannot fill ({exc})",
                         hint="use {model} and {target} only, e.g. edgekit-out/{model}-{target}") from None


def _model_stem(source) -> str:
    if source.path is not None:
        return Path(source.path).stem
    return source.reference.rpartition(":")[2] or "model"


def _load_data(calib, val, specs: list[InputSpec], progress, source,
               **how) -> tuple[SampleSet, SampleSet, list[str]]:
    """Calibration and validation data (``how``: tokenizer, preprocess), or synthetic inputs, with notes."""
    notes = []
    calibration = load_data(calib, specs, **how) if calib else None
    validation = load_data(val, specs, **how) if val else None
    if how.get("tokenizer") is not None:
        rows = _vocabulary_rows(source)
        for samples in (calibration, validation):
            if samples is not None:
                check_vocabulary(samples, rows, how["tokenizer"])
    if calibration is None and validation is None:
        _check_synthetic_possible(specs)
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


def _vocabulary_rows(source) -> int | None:
    """Rows of the model's token-embedding table: the ONNX Gather on ``input_ids``, or the largest
    ``nn.Embedding`` of a PyTorch model (position and type tables are smaller than the vocabulary)."""
    if isinstance(source, OnnxSource):
        return embedding_rows(source.path, "input_ids")
    if isinstance(source, TorchSource):
        from torch import nn

        tables = [m.num_embeddings for m in source.module.modules() if isinstance(m, nn.Embedding)]
        return max(tables, default=None)
    return None


def _check_synthetic_possible(specs: list[InputSpec]) -> None:
    """Random inputs need a size for every dim but the batch: a symbolic height or sequence length has none."""
    dynamic = [f"{s.name} {list(s.shape)}" for s in specs if not s.sized]
    if dynamic:
        raise InputError(f"no --calib/--val data, and inputs {', '.join(dynamic)} have dynamic dims besides the "
                         "batch, so synthetic inputs have no size",
                         hint="fix the dims with --input NAME:1x3x640x640 (one per input), or pass --calib/--val")


def plan_candidates(source, context: StepContext, formats: list[str], dynamic_batch: bool) -> list[CandidatePlan]:
    """Every candidate the routes would build, in profile order, with its steps or why it is not built."""
    return [plan for name in formats
            for plan in get_route(name).plan(context.profile.precisions, context, source, dynamic_batch)]


def _build(source, context: StepContext, formats: list[str], folder: Path, dynamic_batch: bool, simplify: bool,
           progress, wait: bool,
           second_process: SecondProcess) -> tuple[list[Candidate], BuildRun, list[CandidatePlan], list[CandidatePlan]]:
    """Plan every route, then run the plans; with ``wait``, the slow INT8 plans (``late_builds.py``) are returned
    unbuilt, as the last item. Routes that start from ONNX share one FP32 ONNX model, built first when any of them
    is listed (its graph tells the model kind, which decides what ``int8`` becomes; without it, a PyTorch source's
    modules tell it)."""
    run = BuildRun(source, context, folder, dynamic_batch, simplify, progress, build_float_onnx,
                   second_process=second_process)
    routes = [get_route(name) for name in formats]
    run.start_apart(routes)
    if any(r.uses_float_onnx(source, dynamic_batch) for r in routes):
        run.float_onnx()
    if context.model_kind is None and isinstance(source, TorchSource):  # no ONNX graph built: read the modules
        context.model_kind = module_kind(source.module)
    plans = plan_candidates(source, context, formats, dynamic_batch)
    built = [p for p in plans if not p.excluded]
    builds = [seconds for p in built if (seconds := get_route(p.route).typical_seconds(p)) is not None]
    progress.expect(builds + [GATE_S_PER_CANDIDATE, GATE_S_PER_CANDIDATE * len(built),  # the original's outputs
                              LATENCY_S_PER_CANDIDATE * len(built)])
    waiting = [p for p in plans if wait and waits(p, plans)]
    candidates = _build_plans([p for p in built if p not in waiting], run)
    return candidates, run, [p for p in plans if p.excluded], waiting


def _build_plans(plans: list[CandidatePlan], run: BuildRun) -> list[Candidate]:
    """Build ``plans`` (none excluded), in their order but for the routes that build apart: where other plans are
    built here meanwhile, theirs start first, in the second process, and are waited for once the others are built.
    The candidates come back in ``plans``' order."""
    apart = [p for p in plans if get_route(p.route).builds_apart]
    here = [p for p in plans if p not in apart]
    run.overlap = bool(apart and here)
    built = {id(plan): get_route(plan.route).build([plan], run) for plan in apart + here}
    run.finish_apart()
    return [c for plan in plans for c in built[id(plan)]]


def _build_late(waiting: list[CandidatePlan], candidates: list[Candidate], run: BuildRun, reference,
                context: StepContext, validation: SampleSet, timing, latency_decides: bool, rescue: bool,
                progress) -> tuple[list[Candidate], list[dict]]:
    """Build the waiting INT8 plans that could still win against the timed ``candidates`` (every one where latency
    does not decide), gate them against the same reference and time them; returns them, and a not-built record
    for each of the others."""
    skipped, chosen = [], []
    for plan in waiting:
        why = could_not_win(plan, candidates) if latency_decides else None
        if why is None:
            chosen.append(plan)
        else:
            skipped.append({"candidate": plan.name, "reason": why})
    late = _build_plans(chosen, run)
    _gate(late, reference, context, validation, progress)
    timed = [c for c in late if c.usable or (rescue and _rescuable(c, run.source.kind))]
    if timed:
        timing(timed)
    return late, skipped


def not_built_records(excluded: list[CandidatePlan], formats: list[str],
               profile: TargetProfile) -> tuple[list[dict], list[str]]:
    """What was not built and why (a route with no way from this source, a precision the host cannot gate, a
    precision a route has no step for), as manifest records and as notes."""
    records = [{"candidate": p.name, "reason": p.excluded} for p in excluded]
    notes = [f"{p.name} not built: {p.excluded}" for p in excluded]
    for precision in profile.precisions:
        without = [f for f in formats if precision not in get_route(f).precisions]
        records += [{"candidate": f"{f}/{precision.value}", "reason": f"no {precision.value} route in {f}"}
                    for f in without]
        if without:
            notes.append(f"{precision.value} is not built for {', '.join(without)}: no {precision.value} route in "
                         f"{'that format' if len(without) == 1 else 'those formats'}")
    return records, notes


def _reference(source, context: StepContext, validation: SampleSet, progress) -> list:
    """The original's outputs on the validation data, computed once and shared by every gate and rescue."""
    with progress.step(f"the original's outputs on {len(validation)} samples"):
        reference, reason = attempt("the original model",
                                    lambda: _reference_outputs(source, validation, context.profile))
    if reason is not None:
        raise InputError(f"{reason} on the validation data",
                         hint="check that the data fits the model's inputs (shapes, dtypes, and values such as a "
                              "sample rate or token ids)")
    return reference


def _gate(candidates: list[Candidate], reference, context: StepContext, validation: SampleSet, progress) -> None:
    """Gate every built candidate not already rejected (a duplicate) against the original, unrescued."""
    built = [c for c in candidates if c.artifact is not None and c.failure is None]
    if not built:
        return
    profile = context.profile
    with progress.step(f"accuracy gate on {len(validation)} samples"):
        for candidate in built:
            guarded([candidate], "accuracy gate",
                    lambda: gate(candidate, reference, validation, profile.accuracy, profile.threads,
                                 context.output_names, context.output_kinds), "runtime")


def _rescuable(candidate: Candidate, source_kind: str) -> Callable | None:
    route = get_route(candidate.format)
    return route.rescue(candidate.precision, source_kind) if candidate.failure == "accuracy" else None


def _rescue(candidates, context, validation, reference, run: BuildRun, timing, budget_s: float,
            latency_decides: bool, progress) -> dict:
    """The speed-first schedule (``schedule.py``): rescue only what could still win, with no more layers in float
    than its lead pays for, within ``budget_s``; a rescued candidate is timed again (``timing``), as its graph
    changed."""

    def run_rescue(candidate: Candidate, rescue_of: Callable, deadline: float,
                   allowance: FloatAllowance | None) -> None:
        progress.expect_until(deadline)
        float_path, missing = get_route(candidate.format).rescue_float(run)
        if float_path is None:
            candidate.notes.append(f"rescue not tried: {missing}")
            return
        _, reason = attempt(f"rescue of {candidate.name}", lambda: rescue_of(
            candidate, context, reference, validation, float_path, progress, deadline, allowance))
        if reason is not None:
            candidate.notes.append(reason)
        if candidate.usable and candidate.latency is not None:
            timing([candidate])

    return rescue_schedule(candidates, lambda c: _rescuable(c, run.source.kind), run_rescue, budget_s,
                           latency_decides)


def _reference_outputs(source, validation: SampleSet, profile: TargetProfile) -> list[list]:
    """The original's outputs on every validation sample: PyTorch, the given .tflite as it is, or the source ONNX
    file unoptimized."""
    if isinstance(source, TorchSource):
        return [source.run(sample) for sample in validation]
    if isinstance(source, TfliteSource):
        return run_samples(open_runner(source.path, threads=profile.threads,
                                       input_names=[s.name for s in source.inputs]), validation)
    return run_samples(OnnxRunner(source.path, threads=profile.threads, optimization="disabled"), validation)


def _agent_client(url: str, token: str | None, token_file) -> AgentClient:
    """A client for ``--agent``, checked to be reachable before any export work starts."""
    client = AgentClient(check_url(url), require_token(token, token_file))
    client.health()
    return client


def _timing(validation: SampleSet, profile: TargetProfile, client, progress) -> Callable[[list[Candidate]], dict]:
    """A function that times candidates on this host or on the agent's device and returns where it measured
    (with how that machine runs: ``emulated`` and the evidence when it is an emulator)."""
    sample = next(iter(validation))

    def measure(candidates: list[Candidate]) -> dict:
        if client is None:
            with progress.step(f"host latency ({profile.threads} threads)"):
                measure_latencies(candidates, sample, profile.threads, out_of_the_running=OUT_OF_THE_RUNNING)
            return {"where": "host", **machine()}
        with progress.step(f"device latency on {client.url} ({profile.threads} threads)"):
            info = client.info()
            measure_on_agent(candidates, client, sample, profile.threads)
        return {"where": "device", "agent": client.url, "arch": info["arch"], "cpu": info["cpu"],
                "cpu_features": info.get("cpu_features"), "emulated": bool(info.get("emulated")),
                "emulation": info.get("emulation"), "conditions": info["conditions"]}

    return measure


def _with_contenders(timing: Callable[[list[Candidate]], dict],
                     candidates: list[Candidate]) -> Callable[[list[Candidate]], dict]:
    """``timing`` for candidates timed after the first rounds: each call times them together with the passing
    candidates within ``CONTENDER_RATIO`` of the fastest one (of ``candidates`` as it is then), whose figures the
    new rounds replace."""

    def time_with_contenders(new: list[Candidate]) -> dict:
        best = fastest_passing(candidates)
        contenders = [c for c in candidates if best is not None and c.usable and p50(c) is not None
                      and p50(c) <= CONTENDER_RATIO * p50(best) and all(c is not n for n in new)]
        return timing(new + contenders)

    return time_with_contenders


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
    """auto passes when something was selected; an explicit format needs every candidate to pass, or to be
    rejected only as no faster than another (``failure`` speed: a duplicate compiled model)."""
    if fmt == "auto":
        return "passed" if selected is not None else "failed"
    return "passed" if all(c.usable or c.failure == "speed" for c in candidates) else "failed"


def _failure(candidates: list[Candidate], fmt: str, folder: Path | None,
             not_built: list[dict] | None = None) -> Exception:
    """The error for a failed run; ``folder`` is None when nothing was built (and nothing written), and then what
    was not even planned (``not_built``) is named too."""
    failed = [c for c in candidates if c.status == REJECTED and c.failure != "speed"]
    summary = "; ".join([f"{c.name}: {c.reason}" for c in failed] +
                        [f"{r['candidate']}: {r['reason']}" for r in (not_built or []) if folder is None])
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
    for path in artifact_files(candidate.artifact.path):  # an OpenVINO IR's .bin goes with its .xml
        shutil.move(path, rejected / path.name)
    candidate.relocate(candidate.artifact.path.parent, rejected)
