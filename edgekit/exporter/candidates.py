"""Candidates: every (format, precision) model an export produces, its gate result, latency and verdict."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..accuracy import AccuracyReport, apply_budget, compare_outputs
from ..data import SampleSet
from ..runtime import open_runner
from ..runtime.ir_bundle import artifact_digest, artifact_files
from .guard import guarded
from .steps import Artifact, StepResult

PASSED, SELECTED, REJECTED = "passed", "selected", "rejected"
PROVISIONAL_RULE = ("the smallest passing static INT8 candidate whose runtime has int8 kernels on the target's "
                    "architecture (ONNX Runtime and LiteRT: arm64, armv7 and x86-64; OpenVINO: x86-64), else the "
                    "smallest such dynamic INT8 candidate (the recipe for attention models), else the first "
                    "passing candidate in profile order")


@dataclass
class Candidate:
    """One model the export tried to produce. ``artifact`` is None when it could not be built."""

    format: str
    precision: str
    artifact: Artifact | None = None
    steps: list[StepResult] = field(default_factory=list)
    runner_options: dict[str, Any] = field(default_factory=dict)
    accuracy: AccuracyReport | None = None
    latency: dict[str, Any] | None = None
    status: str = PASSED
    reason: str | None = None
    failure: str | None = None  # conversion | runtime | accuracy | speed | device
    notes: list[str] = field(default_factory=list)
    execution: dict[str, Any] | None = None  # what the runtime compiled, where it tells (OpenVINO)
    history: list[dict[str, Any]] = field(default_factory=list)  # every status change: to what, by whom, why

    @property
    def name(self) -> str:
        return f"{self.format}/{self.precision}"

    @property
    def usable(self) -> bool:
        return self.status in (PASSED, SELECTED)

    def mark(self, status: str, by: str, why: str | None = None, failure: str | None = None) -> None:
        """The one way a status changes: recorded with the part of the export that changed it and why. A
        rejection keeps ``failure`` and ``why`` as the candidate's failure and reason; any other status clears
        them."""
        self.status, self.failure, self.reason = status, failure, why if status == REJECTED else None
        self.history.append({"status": status, "by": by, "why": why})

    def reject(self, failure: str, reason: str, by: str | None = None) -> None:
        self.mark(REJECTED, by or failure, reason, failure)

    def runner(self, threads: int):
        return open_runner(self.artifact.path, threads=threads, **self.runner_options)

    def relocate(self, old_root: Path, new_root: Path) -> None:
        if self.artifact is not None:
            path = new_root / self.artifact.path.relative_to(old_root)
            self.artifact = Artifact(path, self.artifact.format, self.artifact.precision)

    def to_dict(self, root: Path) -> dict[str, Any]:
        path = self.artifact.path if self.artifact else None
        files = artifact_files(path) if path else []
        return {"name": self.name, "file": path.relative_to(root).as_posix() if path else None,
                "files": [f.relative_to(root).as_posix() for f in files], "format": self.format,
                "precision": self.precision, "size_bytes": sum(f.stat().st_size for f in files) if path else None,
                "sha256": artifact_digest(path) if path else None,
                "status": self.status, "passed": self.usable, "rejected_reason": self.reason,
                "failure": self.failure, "runner_options": self.runner_options,
                "steps": [s.to_dict() for s in self.steps], "notes": self.notes,
                "accuracy": self.accuracy.to_dict() if self.accuracy else None, "latency": self.latency,
                "execution": self.execution, "history": self.history}


def run_samples(runner, samples: SampleSet) -> list[list[np.ndarray]]:
    return [runner.run(sample) for sample in samples]


def gate(candidate: Candidate, reference: list[list[np.ndarray]], validation: SampleSet, budget,
         threads: int, names: list[str] | None = None, kinds: list[str | None] | None = None) -> AccuracyReport:
    """Compare the candidate with the original on every validation sample and apply the budget. ``names``: the
    original's output names (default: the candidate's); ``kinds``: declared output kinds (None: inferred)."""
    runner = candidate.runner(threads)
    if hasattr(runner, "execution_info"):
        candidate.execution = runner.execution_info()
    report = compare_outputs(reference, run_samples(runner, validation), names or runner.output_names,
                             validation.labels, kinds)
    candidate.accuracy = apply_budget(report, budget)
    if not report.passed:
        candidate.reject("accuracy", "accuracy: " + "; ".join(report.violations))
    return report


def measure_latencies(candidates: list[Candidate], sample: dict[str, np.ndarray], threads: int,
                      rounds: int = 3, out_of_the_running: float | None = None) -> None:
    """Time every candidate once per round, rotating the order, and keep each one's fastest round (its p50s of
    every round recorded beside it as ``round_p50s_ms``): a busy moment on a shared host only adds time, and it
    can last over several rounds of some candidates. With the median round, PP-OCRv4 det's bf16 IR read 10.9 ms
    in an export on the 2-core Xeon (two of its three rounds hit) against 6.7-7.0 ms re-timed right after, and the
    export picked a slower INT8 IR. A candidate that failed only its accuracy budget is timed too (the rescue
    schedule asks whether it could win); one that fails to run is rejected and timed no more. With
    ``out_of_the_running`` (a ratio), a candidate whose fastest run of its first round is over that many times the
    fastest passing candidate's first-round p50 (any candidate's where none passes yet) is timed in no later round
    (its latency says ``rounds_stopped``): it could not be chosen, nor win after a rescue, and its rounds cost at
    least 0.5 s each (MiniLM's ExecuTorch FP32 at 6.6 ms against 1.7 ms). Its fastest run, not its p50: a busy
    moment over its first round must not stop it (a 0.02 ms CNN's FP32 read 2x its INT8's p50 in one CI run)."""
    runners = [(c, guarded([c], "latency", lambda: c.runner(threads), "runtime")) for c in candidates]
    runners = [(c, runner) for c, runner in runners if runner is not None]
    measured: dict[int, list] = {id(c): [] for c in candidates}
    stopped: set[int] = set()
    for index in range(rounds if runners else 0):
        shift = index % len(runners)
        for candidate, runner in runners[shift:] + runners[:shift]:
            if candidate.failure in (None, "accuracy") and id(candidate) not in stopped:  # unrescued ones too
                stats = guarded([candidate], "latency",
                                lambda: runner.benchmark(sample, warmup=5, runs=20, min_seconds=0.5), "runtime")
                measured[id(candidate)].append(stats)
        if index == 0 and out_of_the_running is not None:
            stopped = _out_of_the_running([c for c, _ in runners], measured, out_of_the_running)
    for candidate, _ in runners:
        if candidate.failure in (None, "accuracy") and measured[id(candidate)]:
            timed = measured[id(candidate)]
            fastest = min(timed, key=lambda stats: stats.p50_ms)
            candidate.latency = {**fastest.to_dict(), "round_p50s_ms": [round(r.p50_ms, 4) for r in timed]}
            if id(candidate) in stopped:
                candidate.latency["rounds_stopped"] = (f"after round 1 of {rounds}: over {out_of_the_running:g}x "
                                                       f"the fastest candidate's p50 in its fastest run")


def _out_of_the_running(candidates: list[Candidate], measured: dict[int, list], ratio: float) -> set[int]:
    """ids of the candidates whose fastest run of the first round is over ``ratio`` times the fastest passing
    one's first-round p50 (any one's where none passes)."""
    first = {id(c): measured[id(c)][0] for c in candidates if c.failure in (None, "accuracy") and measured[id(c)]}
    passing = ([first[id(c)].p50_ms for c in candidates if c.failure is None and id(c) in first]
               or [stats.p50_ms for stats in first.values()])
    return {key for key, stats in first.items() if stats.min_ms > ratio * min(passing)} if passing else set()


def measure_on_agent(candidates: list[Candidate], client, sample: dict[str, np.ndarray], threads: int) -> None:
    """Upload each candidate to a device's agent and benchmark it there; a run that fails on the device rejects
    the candidate with the agent's status (runtime_crashed, timeout, error)."""
    for candidate in candidates:
        digest = client.upload(candidate.artifact.path)["digest"]
        result = client.benchmark(digest, threads=threads, warmup=10, runs=30, min_seconds=1.0,
                                  runner_options=candidate.runner_options, arrays=sample)
        if result["status"] == "ok":
            candidate.latency = result["latency"]
            candidate.execution = result.get("execution") or candidate.execution
        else:
            detail = f" ({result['signal']})" if result.get("signal") else ""
            candidate.reject("device", f"on the device: {result['status']}{detail}: {result.get('error')}")


def choose(candidates: list[Candidate], auto: bool) -> tuple[Candidate | None, list[str]]:
    """Mark the fastest usable candidate as selected.

    A quantized candidate that is not faster than its format's FP32 is rejected in auto mode (it has no reason
    to exist) and reported otherwise. Without latencies, the first usable candidate in profile order wins.
    """
    notes: list[str] = []
    usable = [c for c in candidates if c.usable]
    if usable and all(c.latency for c in usable):
        fp32 = {c.format: c for c in usable if c.precision == "fp32"}
        for c in usable:
            base = fp32.get(c.format)
            if base is not None and c is not base and c.latency["p50_ms"] >= base.latency["p50_ms"]:
                text = (f"{c.name} is not faster than {base.name} on this host "
                        f"({c.latency['p50_ms']:.3f} ms vs {base.latency['p50_ms']:.3f} ms p50)")
                if auto:
                    c.reject("speed", f"slower than fp32: {text}")
                else:
                    notes.append(text)
        usable = [c for c in candidates if c.usable]
        best = min(usable, key=lambda c: c.latency["p50_ms"]) if usable else None
    else:
        best = usable[0] if usable else None
        if best is not None:
            notes.append("not benchmarked: the first passing candidate in profile order is recommended")
    if best is not None:
        best.mark(SELECTED, "choice", "the fastest passing candidate by p50" if best.latency else
                  "the first passing candidate in profile order (not benchmarked)")
    return best, notes


def choose_by_rule(candidates: list[Candidate],
                   int8_kernels: Callable[[Candidate], bool] | None = None) -> tuple[Candidate | None, list[str]]:
    """The provisional choice when no latency here may decide (``PROVISIONAL_RULE``; ``int8_kernels`` tells
    whether a candidate's runtime has int8 kernels on the target's architecture; None: every one has, a target of
    any architecture): nothing is rejected for speed,
    and the latencies measured (if any) are information only."""
    usable = [c for c in candidates if c.usable]
    kernels = [c for c in usable if int8_kernels is None or int8_kernels(c)]
    int8 = [c for c in kernels if c.precision == "int8_static"] or [c for c in kernels
                                                                     if c.precision == "int8_dynamic"]
    best = min(int8, key=_size) if int8 else (usable[0] if usable else None)
    if best is None:
        return None, []
    best.mark(SELECTED, "choice", f"provisional, by rule: {PROVISIONAL_RULE}")
    return best, [f"provisional recommendation {best.name}, by rule: {PROVISIONAL_RULE}"]


def _size(candidate: Candidate) -> int:
    """Bytes of every file of the candidate (an OpenVINO IR: its .xml and .bin)."""
    return sum(f.stat().st_size for f in artifact_files(candidate.artifact.path))
