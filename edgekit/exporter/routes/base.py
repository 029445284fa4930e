"""What a route is: one output format declared once, with everything the exporter needs to know about it.

A ``Route`` declares the precisions it builds, what a profile's generic ``int8`` becomes per model kind, the
architectures where its runtime has int8 kernels, the source kinds it builds from, its ordered plan of steps per
precision, and its rescue. The pipeline only plans and runs routes; it never names a format.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ...targets import Precision
from ..candidates import Candidate
from ..guard import guarded
from ..model_kind import ModelKind
from ..steps import Artifact, Step, StepContext, StepResult

@dataclass(frozen=True)
class PlannedStep:
    """One step of a candidate's plan: the registered step's name, the settings it runs with, and how to make it."""

    name: str
    settings: dict[str, Any] = field(default_factory=dict)
    make: Callable[[], Step] | None = field(default=None, compare=False, repr=False)

    def describe(self) -> str:
        shown = ", ".join(f"{k}={v}" for k, v in self.settings.items())
        return f"{self.name}({shown})" if shown else self.name


@dataclass(frozen=True)
class CandidatePlan:
    """A candidate as planned: its route, precision, ordered steps (after the shared ones), and why it is built
    as it is (``note``) or not built at all (``excluded``)."""

    route: str
    precision: str
    steps: tuple[PlannedStep, ...] = ()
    note: str | None = None
    excluded: str | None = None

    @property
    def name(self) -> str:
        return f"{self.route}/{self.precision}"


class Route:
    """One output format. Subclasses fill the declarations and ``plan_steps``/``build_candidate``."""

    name: ClassVar[str]
    title: ClassVar[str]  # the format in a sentence: "ONNX", "TFLite", "OpenVINO"
    suffix: ClassVar[str] = ""  # of its artifact files (its runtime's, runtime/registry.py)
    precisions: ClassVar[tuple[Precision, ...]]
    int8_recipes: ClassVar[dict[str, tuple[Precision, str]]] = {}
    int8_kernel_archs: ClassVar[tuple[str, ...]] = ()
    target_archs: ClassVar[tuple[str, ...] | None] = None  # None: every architecture
    sources: ClassVar[tuple[str, ...]] = ("pytorch",)  # source kinds it builds from (sources.py)
    rescue_summary: ClassVar[str] = ""  # what ``rescue`` does, in words (``--plan``)
    float_onnx_sources: ClassVar[tuple[str, ...]] = ()  # source kinds it starts from the shared FP32 ONNX model for
    # typical seconds of one candidate's build per precision (the corpus on a 2-core Xeon): the progress estimate's
    # weights, scaled there by how long this run's steps take
    typical_build_s: ClassVar[dict[str, float]] = {}
    # its INT8 builds are slow (a PT2E quantization and a conversion): built only once the other candidates are
    # timed, and only where they could win (late_builds.py)
    slow_int8: ClassVar[bool] = False
    # its builds run in the second process while this one builds the other routes' (``second_process.py``)
    builds_apart: ClassVar[bool] = False
    # what a device needs to run this format beyond the agent's default, torch-free extras (said when it is picked)
    device_needs: ClassVar[str | None] = None

    def no_route(self, source, dynamic_batch: bool) -> str | None:
        """Why this route builds nothing from ``source``, or None."""
        if source.kind not in self.sources:
            return f"no route: {_a(source.kind)} source cannot be converted to {self.title} by edgekit"
        return None

    def unsized_inputs(self, source) -> str | None:
        """Why a route whose models have fixed shapes builds nothing from ``source``: an input with a symbolic
        size besides the batch (a published ONNX file's height and width), or None. A symbolic batch is fixed to
        1 (the static-batch default); the other sizes are the user's to give."""
        unsized = [spec for spec in source.inputs if not spec.sized]
        if not unsized:
            return None
        example = " ".join(f"--input {s.name}:" + "x".join(str(d) if isinstance(d, int) else "1" if i == 0 else "N"
                                                          for i, d in enumerate(s.shape)) for s in unsized)
        return (f"{self.title} export needs static input shapes, and {', '.join(map(str, unsized))} has symbolic "
                f"sizes besides the batch: give them, e.g. {example} (N: the size of your data)")

    def typical_seconds(self, plan: CandidatePlan) -> float | None:
        """The typical seconds of the progress step that builds ``plan``, or None where it shows none (a plan
        without steps takes the shared model as it is)."""
        return self.typical_build_s.get(plan.precision, 1.0) if plan.steps else None

    def uses_float_onnx(self, source, dynamic_batch: bool) -> bool:
        """Whether building from ``source`` starts from the shared FP32 ONNX model (``BuildRun.float_onnx``)."""
        return source.kind in self.float_onnx_sources and self.no_route(source, dynamic_batch) is None

    def precision_excluded(self, precision: Precision, context: StepContext) -> str | None:
        """Why one precision is not built on this host, or None (OpenVINO bf16 without bf16 arithmetic)."""
        return None

    def int8_recipe(self, kind: ModelKind | None) -> tuple[Precision, str]:
        """What ``int8`` becomes for ``kind`` here, and why."""
        if kind is None:
            return Precision.int8_static, "static INT8 (the model kind is unknown: the graph was not built)"
        return self.int8_recipes.get(kind.kind, (Precision.int8_static, "static INT8 (no kind-specific recipe)"))

    def concrete(self, listed: list[Precision], kind: ModelKind | None) -> list[tuple[Precision, str | None]]:
        """The profile's precisions this route builds, ``int8`` replaced by its recipe with a note saying why
        (dropped where the profile lists that precision itself)."""
        out: list[tuple[Precision, str | None]] = []
        for precision in (p for p in listed if p in self.precisions):
            note = None
            if precision == Precision.int8:
                precision, reason = self.int8_recipe(kind)
                if precision in listed:
                    continue
                note = (f"int8 → {precision.value} (model kind {kind.kind}: {kind.reason}): {reason}"
                        if kind is not None else f"int8 → {precision.value}: {reason}")
            out.append((precision, note))
        return out

    def plan(self, listed: list[Precision], context: StepContext, source, dynamic_batch: bool) -> list[CandidatePlan]:
        """Every candidate this route would build from ``source`` for the profile's precisions, in order."""
        reason = self.no_route(source, dynamic_batch)
        plans = []
        for precision, note in self.concrete(listed, context.model_kind):
            excluded = reason or self.precision_excluded(precision, context)
            steps = () if excluded else tuple(self.plan_steps(precision, context))
            plans.append(CandidatePlan(self.name, precision.value, steps, note, excluded))
        return plans

    def plan_steps(self, precision: Precision, context: StepContext) -> list[PlannedStep]:  # pragma: no cover
        raise NotImplementedError

    def build(self, plans: list[CandidatePlan], run: "BuildRun") -> list[Candidate]:
        """Build the planned candidates (excluded plans are not candidates); a failing step rejects only the
        candidate it was building, naming the step."""
        built = []
        for plan in plans:
            if plan.excluded:
                continue
            candidate = Candidate(self.name, plan.precision, notes=[plan.note] if plan.note else [])
            built.append(candidate)
            run.built[candidate.name] = candidate
            self.build_candidate(candidate, plan, run)
        return built

    def build_candidate(self, candidate: Candidate, plan: CandidatePlan, run: "BuildRun") -> None:
        """Run ``plan``'s steps one after the other from the route's starting artifact (a plan without steps takes
        that artifact as it is, copied into the folder)."""
        current = self.start(candidate, plan, run)
        if current is None:
            return
        if not plan.steps:
            current = run.copy_to_folder(current, f"model.{plan.precision}{self.suffix}")
        for index, step in enumerate(plan.steps):
            last = index == len(plan.steps) - 1
            out_path = (run.folder / f"model.{plan.precision}{self.suffix}" if last
                        else run.work / f"{self.name}-{plan.precision}-{step.name}{self.suffix}")
            label = f"{self.name} {plan.precision}: {step.name}"  # two candidates may share a step
            with run.progress.step(label):
                result = guarded([candidate], label, lambda: step.make().run(current, out_path, run.context))
            if result is None:
                return
            candidate.steps.append(result)
            current = result.artifact
        candidate.artifact = current
        candidate.runner_options = self.runner_options(plan, run.context)

    def start(self, candidate: Candidate, plan: CandidatePlan, run: "BuildRun") -> Artifact | None:
        """The artifact the plan's steps start from (None rejects the candidate: say why on it)."""
        base, failure = run.float_onnx()
        if base is None:
            candidate.reject("conversion", f"no FP32 ONNX model to start from: {failure}")
        return base

    def runner_options(self, plan: CandidatePlan, context: StepContext) -> dict[str, Any]:
        return {}

    def warm_up_apart(self) -> Callable | None:
        """A call (``fn(source)``, module-level) that readies the second process for this route's builds (its
        imports), sent before the shared ONNX chain is built; None: nothing to ready."""
        return None

    def rescue(self, precision: str, source_kind: str) -> Callable | None:
        """The accuracy rescue for a candidate of ``precision``, built from a ``source_kind`` source, that broke the
        budget, or None."""
        return None

    def rescue_float(self, run: "BuildRun") -> tuple[Path | None, str | None]:
        """The float model a rescue quantizes again (the shared FP32 ONNX model), or None and why there is none."""
        base, missing = run.float_onnx()
        return (base.path, None) if base is not None else (None, f"no FP32 ONNX model ({missing})")


def _a(kind: str) -> str:
    return {"pytorch": "a PyTorch", "onnx": "an .onnx", "tflite": "a .tflite"}.get(kind, f"a {kind}")


@dataclass
class BuildRun:
    """One export's build: what every route reads, and the FP32 ONNX model shared by the routes that start from
    ONNX (built once, on first request, by ``routes.onnx.build_float_onnx``)."""

    source: Any
    context: StepContext
    folder: Path
    dynamic_batch: bool
    simplify: bool
    progress: Any
    make_float_onnx: Callable[["BuildRun"], tuple[Path | None, str | None, list[StepResult]]]
    common_steps: list[StepResult] = field(default_factory=list)
    built: dict[str, Candidate] = field(default_factory=dict)  # every candidate built so far, by name
    second_process: Any = None  # the SecondProcess (second_process.py) for the ``builds_apart`` routes, or None
    overlap: bool = False  # other candidates are built here meanwhile: only then do builds go apart
    _float: tuple[Path | None, str | None] | None = None
    _finishing: list[Callable[[], None]] = field(default_factory=list)
    _ready: dict[Callable[[], None], str | None] = field(default_factory=dict)  # its label until it has run

    def build_apart(self, candidate: Candidate, label: str, call: Callable, *args,
                    then: Callable[[StepResult], None], here: Callable[[], None],
                    ready: Callable[[], None] | None = None) -> None:
        """Build ``candidate`` by ``call(source, *args)`` in the second process, where other candidates are built
        here meanwhile (``overlap``): ``finish_apart`` waits for it and hands its result to ``then`` (a failure
        rejects the candidate, as ``guarded`` would). Otherwise, or where the child cannot take it, ``here()``
        builds it in this process. ``ready()`` readies this process to gate and time the candidate (its runtime's
        imports): ``finish_apart`` calls it first, while the child may still be building."""
        if not self.overlap or self.second_process is None or not self.second_process.usable():
            here()
            return
        outcome = self.second_process.submit(label, call, *args)
        if ready is not None:
            self._ready.setdefault(ready, label)

        def finish() -> None:
            with self.progress.step(f"{label} (second process)"):
                done = outcome()
            if done.unavailable is not None:
                self.progress.note(f"{label} is built in this process: {done.unavailable}")
                here()
            elif done.failure is not None:
                candidate.reject(done.failure, done.reason)
            else:
                then(done.result)

        self._finishing.append(finish)

    def start_apart(self, routes: list[Route]) -> None:
        """Start the second process before the shared ONNX chain where a route that builds from this source builds
        apart and another builds here: it loads the model and readies that route's tools meanwhile."""
        apart = [r for r in routes if r.builds_apart and r.no_route(self.source, self.dynamic_batch) is None]
        if not apart or len(apart) == len(routes) or self.second_process is None or not self.second_process.usable():
            return
        for route in apart:
            if (warm_up := route.warm_up_apart()) is not None:
                self.second_process.submit(f"{route.name}: warm-up", warm_up)

    def finish_apart(self) -> None:
        """Ready this process for the candidates built apart, then wait for every build started in the second
        process, in order."""
        for ready, label in self._ready.items():
            if label is not None:
                self._ready[ready] = None
                with self.progress.step(f"{label}: its runtime readied here meanwhile"):
                    ready()
        while self._finishing:
            self._finishing.pop(0)()

    @property
    def work(self) -> Path:
        path = self.folder / "work"
        path.mkdir(exist_ok=True)
        return path

    def float_onnx(self) -> tuple[Artifact | None, str | None]:
        """The shared FP32 ONNX model (after the common steps), or None and why it could not be made."""
        if self._float is None:
            path, failure, self.common_steps = self.make_float_onnx(self)
            self._float = (path, failure)
        path, failure = self._float
        return (Artifact(path, "onnx", "fp32") if path else None), failure

    def copy_to_folder(self, artifact: Artifact, name: str) -> Artifact:
        shutil.copyfile(artifact.path, self.folder / name)
        return Artifact(self.folder / name, artifact.format, artifact.precision)
