"""Slow INT8 builds wait for the first timing. LiteRT's and ExecuTorch's INT8 (a PT2E quantization and a conversion
or lowering: 5-20 s each on the corpus, 45-67 s for ExecuTorch's on YOLOv8n) are built after every other
candidate has been gated and timed, and only where those figures say they could win.

A waiting INT8 could win unless its format's FP32 p50, sped up by the best INT8 speed-up timed on this model in
another format (that format's FP32 p50 over its INT8's) times ``SPEEDUP_SLACK``, is not ``RESCUE_MARGIN`` below the
fastest passing candidate's (the rescue schedule's margin: host timings spread by up to 7 % between exports, and a
build of up to a minute is not spent on a lead noise could give). Where there is no such evidence (no other
format's INT8 and FP32 both timed, no timed FP32 of its own format, nothing passing yet), or latency does not
decide (not benchmarked, measured off the target), it is built.
"""

from __future__ import annotations

from .candidates import Candidate
from .routes import CandidatePlan, get_route
from .schedule import RESCUE_MARGIN, fastest_passing, p50

QUANTIZED = ("int8_static", "int8_dynamic", "int8_bf16")
FLOAT_TWINS = ("fp32", "given")  # a format's float candidate: built, or a given float .tflite as it is
# XNNPACK's INT8 speed-up over its FP32 exceeded the best other format's by up to 1.21x on the corpus (MiniLM:
# LiteRT dynamic INT8 3.17x, OpenVINO INT8 with a bf16 remainder 2.61x; MTCNN ONet: LiteRT 1.99x, OpenVINO 1.66x;
# 2-core EPYC Zen 4); the rest covers the FP32 twin's own timing noise (MiniLM's LiteRT FP32 read 7.92 ms in one
# export, 4.8-5.8 ms in others: with 1.25 its INT8, the usual pick, was left unbuilt)
SPEEDUP_SLACK = 1.5


def waits(plan: CandidatePlan, plans: list[CandidatePlan]) -> bool:
    """Whether ``plan`` is built only once the other candidates are timed: a slow route's INT8 whose float twin is
    among ``plans`` (without it, no timing could say the INT8 would lose)."""
    twin = any(p.route == plan.route and p.precision in FLOAT_TWINS and not p.excluded for p in plans)
    return twin and not plan.excluded and get_route(plan.route).slow_int8 and plan.precision in QUANTIZED


def best_int8_speedup(candidates: list[Candidate], other_than: str) -> tuple[str, float] | None:
    """The largest timed FP32-over-INT8 speed-up in a format other than ``other_than``, with the INT8's name."""
    found = []
    for twin in (c for c in candidates if c.format != other_than and c.precision in FLOAT_TWINS and p50(c)):
        found += [(c.name, p50(twin) / p50(c)) for c in candidates
                  if c.format == twin.format and c.precision in QUANTIZED and p50(c)]
    return max(found, key=lambda item: item[1], default=None)


def could_not_win(plan: CandidatePlan, candidates: list[Candidate]) -> str | None:
    """Why the waiting ``plan`` is not built, or None to build it."""
    best = fastest_passing(candidates)
    twin = next((c for c in candidates if c.format == plan.route and c.precision in FLOAT_TWINS and p50(c)), None)
    speedup = best_int8_speedup(candidates, plan.route)
    if best is None or twin is None or speedup is None:
        return None
    fastest_possible = p50(twin) / (speedup[1] * SPEEDUP_SLACK)
    if fastest_possible <= p50(best) * (1 - RESCUE_MARGIN):
        return None
    return (f"it could not win: {twin.name}'s p50 {p50(twin):.3f} ms, sped up {SPEEDUP_SLACK:g}x more than the best "
            f"INT8 timed on this model ({speedup[0]}: {speedup[1]:.2f}x its FP32), is {fastest_possible:.3f} ms, "
            f"not {RESCUE_MARGIN:.0%} below {best.name}'s {p50(best):.3f} ms")
