"""The host timing's rotating rounds on real ONNX Runtime sessions: a candidate far slower than the fastest passing
one after the first round is timed no more (the export's rule), and without that rule every candidate gets every
round."""

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgekit.exporter.candidates import Candidate, measure_latencies
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
    slow = matmul_chain(tmp_path / "slow.onnx", 1024, 12)  # about 2,500x the work: far over 2x on any CPU
    failed = matmul_chain(tmp_path / "failed.onnx", 1024, 12)
    failed.reject("accuracy", "accuracy: cosine_min 0.9 < 0.99")
    return [fast, slow, failed]


def test_a_candidate_far_slower_than_the_fastest_passing_one_is_timed_in_the_first_round_only(tmp_path):
    fast, slow, failed = pool(tmp_path)
    measure_latencies([fast, slow, failed], SAMPLE, threads=1, out_of_the_running=2.0)
    assert len(fast.latency["round_p50s_ms"]) == 3 and "rounds_stopped" not in fast.latency
    for candidate in (slow, failed):
        assert len(candidate.latency["round_p50s_ms"]) == 1
        assert candidate.latency["rounds_stopped"] == "after round 1 of 3: over 2x the fastest candidate's p50"
        assert candidate.latency["p50_ms"] > 2 * fast.latency["p50_ms"]


def test_without_the_rule_every_candidate_gets_every_round(tmp_path):
    candidates = pool(tmp_path)
    measure_latencies(candidates, SAMPLE, threads=1)
    assert [len(c.latency["round_p50s_ms"]) for c in candidates] == [3, 3, 3]
    assert not any("rounds_stopped" in c.latency for c in candidates)


def test_where_none_passes_the_fastest_of_all_sets_the_bar(tmp_path):
    fast, _, failed = pool(tmp_path)
    fast.reject("accuracy", "accuracy: cosine_min 0.9 < 0.99")
    measure_latencies([fast, failed], SAMPLE, threads=1, out_of_the_running=2.0)
    assert len(fast.latency["round_p50s_ms"]) == 3 and len(failed.latency["round_p50s_ms"]) == 1
