"""Which slow INT8 builds wait for the first timing, and which of them the timed figures leave unbuilt (figures set,
not timed: the rule, not a CPU, is under test)."""

from edgekit.exporter.candidates import Candidate
from edgekit.exporter.late_builds import SPEEDUP_SLACK, best_int8_speedup, could_not_win, waits
from edgekit.exporter.routes import CandidatePlan


def timed(name: str, p50: float | None, passed: bool = True) -> Candidate:
    fmt, precision = name.split("/")
    candidate = Candidate(fmt, precision)
    candidate.latency = {"p50_ms": p50} if p50 is not None else None
    if not passed:
        candidate.reject("accuracy", "accuracy: cosine_min 0.9 < 0.99")
    return candidate


def test_only_the_slow_routes_int8_plans_with_a_float_twin_wait():
    plans = [CandidatePlan(route, precision) for route, precisions in
             (("onnx", ("fp32", "int8_static")), ("openvino", ("fp32", "int8_bf16")),
              ("tflite", ("fp32", "int8_static", "int8_dynamic")), ("executorch", ("fp32", "int8_static")))
             for precision in precisions]
    assert [p.name for p in plans if waits(p, plans)] == ["tflite/int8_static", "tflite/int8_dynamic",
                                                          "executorch/int8_static"]
    int8_only = [p for p in plans if p.precision != "fp32"]  # nothing timed could say the INT8 would lose
    assert not [p for p in int8_only if waits(p, int8_only)]
    given = [CandidatePlan("tflite", "given"), CandidatePlan("tflite", "int8_static")]
    assert waits(given[1], given)
    unbuildable = [CandidatePlan("tflite", "fp32", excluded="no route"),
                   CandidatePlan("tflite", "int8_static", excluded="no route")]
    assert not waits(unbuildable[1], unbuildable)


def test_the_best_speedup_comes_from_another_format_and_counts_failed_int8_too():
    candidates = [timed("onnx/fp32", 30.0), timed("onnx/int8_static", 25.0), timed("openvino/fp32", 20.0),
                  timed("openvino/int8_static", 8.0, passed=False), timed("tflite/fp32", 28.0),
                  timed("tflite/int8_static", 4.0)]
    name, speedup = best_int8_speedup(candidates, other_than="tflite")
    assert name == "openvino/int8_static" and speedup == 2.5  # latency is latency, failed budget or not
    assert best_int8_speedup(candidates, other_than="openvino") == ("tflite/int8_static", 7.0)
    assert best_int8_speedup([timed("onnx/fp32", 30.0), timed("onnx/int8_static", None)], "tflite") is None


def test_a_waiting_int8_is_left_unbuilt_only_if_even_the_best_speedup_with_slack_cannot_win():
    best, float_twin = timed("openvino/bf16", 9.0), timed("tflite/fp32", 40.0)
    evidence = [timed("openvino/fp32", 20.0), timed("openvino/int8_static", 8.0, passed=False)]  # 2.5x
    plan = CandidatePlan("tflite", "int8_static")
    why = could_not_win(plan, [best, float_twin, *evidence])
    fastest = 40.0 / (2.5 * SPEEDUP_SLACK)
    assert fastest > 9.0 and why == (
        f"it could not win: tflite/fp32's p50 40.000 ms, sped up {SPEEDUP_SLACK:g}x more than the best INT8 timed "
        f"on this model (openvino/int8_static: 2.50x its FP32), is {fastest:.3f} ms, not 10% below "
        f"openvino/bf16's 9.000 ms")
    within_reach = timed("tflite/fp32", 2.5 * SPEEDUP_SLACK * 9.0 * 0.89)
    assert could_not_win(plan, [best, within_reach, *evidence]) is None
    within_noise = timed("tflite/fp32", 2.5 * SPEEDUP_SLACK * 9.0 * 0.95)  # a lead noise could give: not built
    assert could_not_win(plan, [best, within_noise, *evidence]) is not None


def test_without_evidence_a_waiting_int8_is_built():
    plan = CandidatePlan("executorch", "int8_static")
    best, slow_twin = timed("openvino/bf16", 1.0), timed("executorch/fp32", 100.0)
    assert could_not_win(plan, [best, slow_twin]) is None  # no INT8 timed in another format
    evidence = [timed("onnx/fp32", 2.0, passed=False), timed("onnx/int8_static", 1.5, passed=False)]
    assert could_not_win(plan, [best, timed("executorch/fp32", None), *evidence]) is None  # its FP32 not timed
    failed = [timed("openvino/bf16", 1.0, passed=False), timed("executorch/fp32", 100.0, passed=False)]
    assert could_not_win(plan, failed + evidence) is None  # nothing passes: no bar to compare with
    assert could_not_win(plan, [best, slow_twin, *evidence]) is not None
