"""The host timing's rotating rounds: which first rounds the export's rule stops (figures set, not timed), and on
real ONNX Runtime sessions what a stopped candidate's latency then records; without the rule every candidate gets
every round. The tests assert what was recorded, never how fast anything ran."""

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgekit.exporter.candidates import Candidate, _out_of_the_running, measure_latencies
from edgekit.exporter.steps import Artifact

SAMPLE = {"x": np.ones((1, 64), np.float32)}


def matmul_chain(path: Path, width: int, depth: int) -> Candidate:
    """64 -> ``width`` -> … -> 64 through ``depth`` MatMuls: the work grows as depth x width squared."""
    rng = np.random.default_rng(0)
    sizes = [64] + [width] * (depth - 1) + [64]
    weights = [numpy_helper.from_array((rng.standard_normal((a, b)) / a).astype(np.float32), f"w{i}")
               for i, (a, b) in enumerate(zip(sizes, sizes[1:]))]
    nodes = [helper.make_node("MatMul", ["x" if i == 0 else f"h{i - 1}", f"w{i}"],
                              ["y" if i == depth - 1 else f"h{i}"]) for i in range(depth)]
    graph = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64])], weights)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return Candidate("onnx", path.stem, Artifact(path, "onnx", "fp32"))


def pool(tmp_path: Path) -> list[Candidate]:
    """A fast passing candidate, a slow passing one and a slow one that broke its accuracy budget (timed too: the
    rescue schedule asks whether it could win)."""
    fast = matmul_chain(tmp_path / "fast.onnx", 64, 1)
    slow = matmul_chain(tmp_path / "slow.onnx", 1024, 12)  # about 2,500x the work
    failed = matmul_chain(tmp_path / "failed.onnx", 1024, 12)
    failed.reject("accuracy", "accuracy: cosine_min 0.9 < 0.99")
    return [fast, slow, failed]


def test_the_rule_stops_what_is_over_the_ratio_of_the_fastest_passing_first_round():
    fast, slow, failed_fast = (Candidate("onnx", name, Artifact(Path(f"{name}.onnx"), "onnx", "fp32"))
                               for name in ("fast", "slow", "failed_fast"))
    failed_fast.reject("accuracy", "accuracy: cosine_min 0.9 < 0.99")  # timed too, but it sets no bar
    measured = {id(c): [SimpleNamespace(p50_ms=p50, min_ms=p50 * 0.9)]
                for c, p50 in ((fast, 1.0), (slow, 2.5), (failed_fast, 0.2))}
    assert _out_of_the_running([fast, slow, failed_fast], measured, 2.0) == {id(slow)}
    assert _out_of_the_running([fast, slow, failed_fast], measured, 3.0) == set()
    measured[id(slow)] = [SimpleNamespace(p50_ms=2.5, min_ms=1.5)]  # a busy first round: its fastest run is near
    assert _out_of_the_running([fast, slow, failed_fast], measured, 2.0) == set()
    measured[id(slow)] = [SimpleNamespace(p50_ms=2.5, min_ms=2.25)]
    for candidate in (fast, slow):  # none passes: the fastest of all sets the bar
        candidate.reject("accuracy", "accuracy: cosine_min 0.9 < 0.99")
    assert _out_of_the_running([fast, slow, failed_fast], measured, 2.0) == {id(fast), id(slow)}


def test_a_stopped_candidate_keeps_its_first_round_and_says_so(tmp_path):
    candidates = pool(tmp_path)
    measure_latencies(candidates, SAMPLE, threads=1, out_of_the_running=2.0)
    stopped = [c for c in candidates if "rounds_stopped" in c.latency]
    for candidate in candidates:
        rounds = candidate.latency["round_p50s_ms"]
        assert len(rounds) == (1 if candidate in stopped else 3)
        assert candidate.latency["p50_ms"] == pytest.approx(min(rounds), abs=1e-4)
    for candidate in stopped:
        assert candidate.latency["rounds_stopped"] == ("after round 1 of 3: over 2x the fastest candidate's p50 "
                                                      "in its fastest run")
    bar = min((c for c in candidates if c.failure is None), key=lambda c: c.latency["round_p50s_ms"][0])
    assert bar not in stopped  # the fastest passing first round sets the bar and is never stopped


def test_without_the_rule_every_candidate_gets_every_round(tmp_path):
    candidates = pool(tmp_path)
    measure_latencies(candidates, SAMPLE, threads=1)
    assert [len(c.latency["round_p50s_ms"]) for c in candidates] == [3, 3, 3]
    assert not any("rounds_stopped" in c.latency for c in candidates)
