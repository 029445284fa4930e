"""Auto selection and the speed-first rescue schedule on candidates whose speeds differ by construction
(latencies set, not timed), and what the OpenVINO rescue's search is paced and judged by."""

import time
from pathlib import Path

import numpy as np
import pytest

from edgekit.accuracy import cosine
from edgekit.accuracy.groups import sample_cosine, stacked_layout
from edgekit.exporter.candidates import Candidate, choose
from edgekit.exporter.rescue import _stopping_at_deadline
from edgekit.exporter.schedule import RESCUE_MARGIN, FloatAllowance, rescue_schedule
from edgekit.exporter.steps import Artifact
from edgekit.exporter.steps.base import OutOfTime, check_deadline
from edgekit.exporter.steps.openvino_quantize import FORECAST_AFTER, AccuracyControl, SearchPace


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


def run_schedule(pool, budget_s=60.0, latency_decides=True, passes=()):
    """The speed-first rescue schedule over ``pool``; a rescue makes a candidate pass when its name is in
    ``passes``. Returns the manifest record and the (name, deadline) of every rescue run."""
    runs = []

    def run_rescue(c, rescue, deadline, allowance):
        runs.append((c.name, deadline))
        c.notes.append(f"allowance: {allowance}")
        if c.name in passes:
            c.mark("passed", "rescue", "passes with 1 layer in float")

    return rescue_schedule(pool, lambda c: "a rescue", run_rescue, budget_s, latency_decides), runs


def test_rescue_schedule_rescues_only_what_could_win_fastest_first_and_stops_at_a_winner():
    pool = [candidate("onnx", "fp32", 10.0), candidate("onnx", "int8_static", 5.0, status="rejected"),
            candidate("openvino", "int8_static", 4.0, status="rejected"),
            candidate("tflite", "int8_static", 9.5, status="rejected")]
    started = time.monotonic()
    record, runs = run_schedule(pool, passes={"openvino/int8_static"})
    assert [name for name, _ in runs] == ["openvino/int8_static"]  # the fastest unrescued first, and it won
    assert started + 60.0 <= runs[0][1] <= time.monotonic() + 60.0  # one deadline: the budget from the start
    assert record["tried"] == ["openvino/int8_static"] and record["order"] == "fastest unrescued first"
    skipped = {entry["candidate"]: entry["why"] for entry in record["skipped"]}
    assert skipped["onnx/int8_static"] == "openvino/int8_static, rescued and faster unrescued, already won"
    assert set(skipped) == {"onnx/int8_static", "tflite/int8_static"}
    assert all(f"rescue skipped: {why}" in next(c for c in pool if c.name == name).notes
               for name, why in skipped.items())


def test_rescue_schedule_tells_each_rescue_how_many_float_layers_its_lead_pays_for():
    pool = [candidate("onnx", "fp32", 10.0), candidate("openvino", "fp32", 12.0),
            candidate("openvino", "int8_static", 4.0, status="rejected"),
            candidate("tflite", "int8_static", 5.0, status="rejected")]  # no tflite/fp32 timed: no allowance
    record, runs = run_schedule(pool)
    assert [name for name, _ in runs] == ["openvino/int8_static", "tflite/int8_static"]
    # 10 ms less the 10 % margin, less its own 4 ms; the whole model in float costs 12 - 4 ms
    assert record["float_allowances"] == {"openvino/int8_static": {"lead_ms": 5.0, "float_cost_ms": 8.0,
                                                                   "best": "onnx/fp32", "float_twin": "openvino/fp32"}}
    allowance = FloatAllowance(5.0, 8.0, "onnx/fp32", "openvino/fp32")
    assert pool[2].notes == [f"allowance: {allowance}"] and pool[3].notes == ["allowance: None"]
    assert [allowance.layers(n) for n in (1, 2, 40)] == [0, 1, 25]
    assert allowance.describe(40) == ("its lead on onnx/fp32 past the 10% margin (5.000 ms) pays for 25 of its 40 "
                                      "compute layers in float (about 0.200 ms each, from openvino/fp32's p50)")


def test_rescue_schedule_skips_a_candidate_not_a_margin_below_the_best_passing_one():
    pool = [candidate("onnx", "fp32", 10.0), candidate("onnx", "int8_static", 9.5, status="rejected"),
            candidate("tflite", "int8_static", 8.9, status="rejected")]
    record, runs = run_schedule(pool)
    assert [name for name, _ in runs] == ["tflite/int8_static"]  # 11 % below onnx/fp32: could win; it did not
    why = record["skipped"][0]["why"]
    assert record["skipped"][0]["candidate"] == "onnx/int8_static" and record["margin"] == RESCUE_MARGIN
    assert why.startswith("it could not win: unrescued p50 9.500 ms is not 10% below onnx/fp32's 10.000 ms")


def test_rescue_schedule_spends_no_more_than_its_budget_and_says_so():
    pool = [candidate("onnx", "fp32", 10.0), candidate("onnx", "int8_static", 2.0, status="rejected")]
    record, runs = run_schedule(pool, budget_s=0.0)
    assert runs == [] and record["tried"] == [] and record["budget_s"] == 0.0
    assert record["skipped"] == [{"candidate": "onnx/int8_static",
                                  "why": "the rescue time budget is spent (--rescue-budget-s)"}]


def test_rescue_schedule_without_latencies_goes_in_profile_order_without_a_margin():
    pool = [candidate("onnx", "fp32", None), candidate("onnx", "int8_static", None, status="rejected"),
            candidate("tflite", "int8_static", None, status="rejected")]
    record, runs = run_schedule(pool, latency_decides=False)
    assert [name for name, _ in runs] == ["onnx/int8_static", "tflite/int8_static"]
    assert record["order"] == "profile order (latency does not decide here)" and record["margin"] is None


def test_a_rescue_out_of_time_stops_between_trials_and_notes_it():
    def search(c, *args):
        c.notes.append("trial 1 gated")
        check_deadline(time.monotonic() - 1)
        c.notes.append("trial 2 gated")

    c = candidate("onnx", "int8_static", 2.0, status="rejected")
    _stopping_at_deadline(search)(c, None, None, None, None, None, deadline=time.monotonic() - 1)
    assert c.notes == ["trial 1 gated", "rescue stopped: the rescue time budget (--rescue-budget-s) ran out"]
    assert c.status == "rejected"


class Clock:
    """``time.monotonic`` for the deadline checks: evaluations start when the test says."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def evaluate(pace: SearchPace, clock: Clock, seconds_each: float, count: int) -> None:
    for index in range(count):
        clock.now = index * seconds_each
        pace.next_evaluation()


def nncf_search(quantizers: int, max_float_layers: int, deadline: float | None) -> SearchPace:
    return SearchPace(AccuracyControl([], None, 0.99, max_float_layers, quantizers, deadline))


def test_nncf_search_whose_pace_fits_its_budget_runs_every_evaluation(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(time, "monotonic", clock)
    pace = nncf_search(quantizers=58, max_float_layers=2, deadline=40.0)
    assert pace.evaluations == 63  # the float and quantized models and one sample, 58 groups, 2 reverts
    evaluate(pace, clock, 0.6, 63)  # 37.8 s: within 40
    assert len(pace.started) == 63


def test_nncf_search_stops_once_its_pace_says_it_would_end_past_the_budget(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(time, "monotonic", clock)
    pace = nncf_search(quantizers=58, max_float_layers=2, deadline=30.0)
    with pytest.raises(OutOfTime, match=r"at its pace so far \(0\.60 s an evaluation, 5 done of up to 63\) it would "
                                        r"need about 35 s more, past the rescue time budget \(--rescue-budget-s\) "
                                        r"by 8 s"):
        evaluate(pace, clock, 0.6, 63)
    assert clock.now == pytest.approx(0.6 * FORECAST_AFTER)  # 3 s in, not at the 30 s deadline


def test_nncf_search_ranking_again_after_a_step_back_is_forecast_as_another_pass(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(time, "monotonic", clock)
    pace = nncf_search(quantizers=58, max_float_layers=2, deadline=60.0)
    # the 63 planned evaluations fit (37.8 s); a 64th means NNCF went back a step and ranks again: 58 more won't
    with pytest.raises(OutOfTime, match=r"\(0\.60 s an evaluation, 63 done of up to 121\) it would need about 35 s "
                                        r"more, past the rescue time budget \(--rescue-budget-s\) by 13 s"):
        evaluate(pace, clock, 0.6, 121)
    assert len(pace.started) == 64


def test_nncf_search_is_not_forecast_on_too_few_evaluations_nor_without_a_deadline(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(time, "monotonic", clock)
    evaluate(nncf_search(quantizers=58, max_float_layers=2, deadline=None), clock, 10.0, 63)
    early = nncf_search(quantizers=58, max_float_layers=2, deadline=3.5)
    evaluate(early, clock, 0.6, FORECAST_AFTER)  # 63 at 0.6 s would not fit, but 4 done are too few to say so
    clock.now = 4.0
    with pytest.raises(OutOfTime, match=r"^the rescue time budget \(--rescue-budget-s\) ran out$"):
        early.next_evaluation()


def yolo_head(rng, samples: int) -> list[np.ndarray]:
    """[1, 4 + 18, 2100] outputs: box rows in pixels, class-score rows in [0, 0.4] (NudeNet 320n's layout)."""
    return [np.concatenate([rng.uniform(0, 320, (1, 4, 2100)), rng.uniform(0, 0.4, (1, 18, 2100))], axis=1)
            for _ in range(samples)]


def test_nncf_search_metric_judges_each_channel_group_as_the_gate_does():
    rng = np.random.default_rng(0)
    reference = yolo_head(rng, 4)
    layouts = [stacked_layout(reference)]
    assert [g.role for g in layouts[0].groups] == ["boxes", "class scores"]
    scores_zeroed = reference[0].copy()
    scores_zeroed[:, 4:] = 0.0  # what one per-tensor INT8 scale set by the boxes does to the scores
    assert cosine(reference[0], scores_zeroed) > 0.999  # the whole output hides it
    assert sample_cosine([reference[0]], [scores_zeroed], layouts) == 0.0
    assert sample_cosine([reference[0]], [reference[0]], layouts) == pytest.approx(1.0)
    plain = rng.standard_normal((1, 10))
    assert sample_cosine([plain], [plain * 0.5 + 0.1], [None]) == pytest.approx(cosine(plain, plain * 0.5 + 0.1))
    broken = reference[0].copy()
    broken[0, 0, 0] = np.nan
    assert sample_cosine([reference[0]], [broken], layouts) == -1.0  # fails closed
