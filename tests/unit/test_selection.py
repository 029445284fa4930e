"""Auto selection on candidates whose speeds differ by construction (latencies set, not timed)."""

from pathlib import Path

import pytest

from edgekit.exporter.candidates import Candidate, choose
from edgekit.exporter.steps import Artifact


def candidate(fmt: str, precision: str, p50: float | None, status: str = "passed") -> Candidate:
    c = Candidate(fmt, precision, Artifact(Path(f"model.{precision}.{fmt}"), fmt, precision))
    c.latency = None if p50 is None else {"p50_ms": p50, "p90_ms": p50 * 1.1}
    if status == "rejected":
        c.reject("accuracy", "accuracy: cosine_min 0.9 < 0.99")
    return c


def test_auto_picks_the_fastest_passing_candidate():
    pool = [candidate("onnx", "fp32", 8.0), candidate("onnx", "int8_static", 2.7),
            candidate("tflite", "fp32", 6.0), candidate("tflite", "int8_static", 1.0, status="rejected")]
    best, _ = choose(pool, auto=True)
    assert best.name == "onnx/int8_static" and best.status == "selected"
    assert [c.status for c in pool] == ["passed", "selected", "passed", "rejected"]


def test_auto_rejects_quantized_candidates_slower_than_their_fp32():
    pool = [candidate("onnx", "fp32", 1.0), candidate("onnx", "int8_dynamic", 9.0),
            candidate("tflite", "fp32", 2.0), candidate("tflite", "fp16", 1.5)]
    best, _ = choose(pool, auto=True)
    assert best.name == "onnx/fp32"
    slow = pool[1]
    assert slow.status == "rejected" and slow.failure == "speed" and "slower than fp32" in slow.reason
    assert pool[3].status == "passed"  # faster than tflite/fp32, just not the fastest overall


def test_explicit_format_reports_but_keeps_a_slow_int8():
    pool = [candidate("onnx", "fp32", 1.0), candidate("onnx", "int8_static", 1.2)]
    best, notes = choose(pool, auto=False)
    assert best.name == "onnx/fp32" and pool[1].status == "passed"
    assert "onnx/int8_static is not faster than onnx/fp32" in notes[0]


def test_without_latencies_the_first_passing_in_profile_order_wins():
    pool = [candidate("onnx", "fp32", None, status="rejected"), candidate("onnx", "int8_static", None)]
    best, notes = choose(pool, auto=True)
    assert best.name == "onnx/int8_static" and "not benchmarked" in notes[0]


@pytest.mark.parametrize("auto", [True, False])
def test_nothing_usable_selects_nothing(auto):
    pool = [candidate("onnx", "fp32", 1.0, status="rejected")]
    assert choose(pool, auto=auto) == (None, [])
