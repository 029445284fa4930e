"""The speed-first rescue schedule: every candidate is built, gated and timed unrescued first; a rescue (slow:
re-quantizing with layers in float, many gates) is then spent only on a candidate that could still win.

A candidate that broke its accuracy budget could win only if its unrescued latency beats the best passing one by
``RESCUE_MARGIN`` (a rescue keeps layers in float, so it only gets slower). Such candidates are rescued fastest
first, until one rescued candidate becomes the fastest passing one or the time budget is spent. Each rescue is
told how many layers its lead pays for (``FloatAllowance``): what is left of the lead past the margin, over what
one layer in float costs (its format's FP32 p50 minus its own, shared by its compute layers), so that it neither
searches for nor returns a model too slow to win. Where latency may not decide (no benchmark, or measured off the
target), the rescue runs in profile order within the budget. Every candidate not rescued says why; the manifest's
``rescue`` records the order, the time, each allowance and what was skipped.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from .candidates import Candidate

# Unrescued p50 at least 10 % below the best passing p50: above the host timing's run-to-run spread (PP-OCRv4 rec's
# OpenVINO INT8 IR measured 2.11, 2.19 and 2.27 ms in three exports on the 2-core Xeon, its bf16 2.31-2.43 ms), so
# that noise does not decide whether a 60 s rescue runs; a rescued model keeps layers in float and loses some lead.
RESCUE_MARGIN = 0.10


@dataclass(frozen=True)
class FloatAllowance:
    """How much float a rescued candidate can afford and still win, assuming each of its compute layers costs an
    equal share of running the whole model in float (its format's FP32 p50 minus its own p50)."""

    lead_ms: float  # its unrescued p50 below the best passing one's, past the margin
    float_cost_ms: float  # the whole model in float: its format's FP32 p50 minus its own
    best: str
    float_twin: str

    def layers(self, compute_layers: int) -> int:
        """How many of ``compute_layers`` the lead pays for in float."""
        return math.floor(compute_layers * self.lead_ms / self.float_cost_ms)

    def describe(self, compute_layers: int) -> str:
        share = self.float_cost_ms / compute_layers
        return (f"its lead on {self.best} past the {RESCUE_MARGIN:.0%} margin ({self.lead_ms:.3f} ms) pays for "
                f"{self.layers(compute_layers)} of its {compute_layers} compute layers in float (about {share:.3f} "
                f"ms each, from {self.float_twin}'s p50)")

    def record(self) -> dict:
        return {"lead_ms": round(self.lead_ms, 4), "float_cost_ms": round(self.float_cost_ms, 4),
                "best": self.best, "float_twin": self.float_twin}


def p50(candidate: Candidate) -> float | None:
    """The candidate's timed p50 in ms, or None where it was not timed."""
    return candidate.latency["p50_ms"] if candidate.latency else None


def rescue_schedule(candidates: list[Candidate], rescue_of: Callable[[Candidate], Callable | None],
                    run_rescue: Callable[[Candidate, Callable, float, FloatAllowance | None], None],
                    budget_s: float, latency_decides: bool) -> dict:
    """Rescue what could still win (``run_rescue(candidate, rescue, deadline, allowance)`` re-times a rescued
    candidate); returns the manifest's record."""
    failing = [c for c in candidates if c.failure == "accuracy" and c.artifact is not None and rescue_of(c)]
    timed = latency_decides and all(p50(c) is not None for c in failing)
    order = sorted(failing, key=p50) if timed else failing
    start, skipped, tried, allowances = time.monotonic(), [], [], {}
    deadline = start + budget_s
    winner: Candidate | None = None
    for candidate in order:
        why = _skip_reason(candidate, candidates, timed, winner, deadline)
        if why is not None:
            candidate.notes.append(f"rescue skipped: {why}")
            skipped.append({"candidate": candidate.name, "why": why})
            continue
        tried.append(candidate.name)
        allowance = _float_allowance(candidate, candidates) if timed else None
        if allowance is not None:
            allowances[candidate.name] = allowance.record()
        run_rescue(candidate, rescue_of(candidate), deadline, allowance)
        if timed and candidate.usable and fastest_passing(candidates) is candidate:
            winner = candidate
    return {"budget_s": budget_s, "spent_s": round(time.monotonic() - start, 3),
            "order": "fastest unrescued first" if timed else "profile order (latency does not decide here)",
            "margin": RESCUE_MARGIN if timed else None, "tried": tried, "float_allowances": allowances,
            "skipped": skipped}


def _skip_reason(candidate: Candidate, candidates: list[Candidate], timed: bool, winner: Candidate | None,
                 deadline: float) -> str | None:
    if winner is not None:
        return f"{winner.name}, rescued and faster unrescued, already won"
    if time.monotonic() >= deadline:
        return "the rescue time budget is spent (--rescue-budget-s)"
    best = fastest_passing(candidates) if timed else None
    if best is not None and p50(candidate) >= p50(best) * (1 - RESCUE_MARGIN):
        return (f"it could not win: unrescued p50 {p50(candidate):.3f} ms is not {RESCUE_MARGIN:.0%} below "
                f"{best.name}'s {p50(best):.3f} ms, and a rescue does not make it faster")
    return None


def fastest_passing(candidates: list[Candidate]) -> Candidate | None:
    passing = [c for c in candidates if c.usable and p50(c) is not None]
    return min(passing, key=p50) if passing else None


def _float_allowance(candidate: Candidate, candidates: list[Candidate]) -> FloatAllowance | None:
    """The float ``candidate``'s lead pays for; None where its format has no timed FP32 slower than it."""
    best = fastest_passing(candidates)
    twin = next((c for c in candidates if c.format == candidate.format and c.precision == "fp32"
                 and p50(c) is not None), None)
    if best is None or twin is None or p50(twin) <= p50(candidate):
        return None
    return FloatAllowance(p50(best) * (1 - RESCUE_MARGIN) - p50(candidate), p50(twin) - p50(candidate),
                          best.name, twin.name)
