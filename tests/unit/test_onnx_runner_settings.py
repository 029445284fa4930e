"""OnnxRunner's session settings: spinning on by default (ONNX Runtime's own default), off on request, both read
back from the session, and neither changes a result."""

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgekit.runtime.onnxrt import OnnxRunner


def matmul_model(path):
    weights = numpy_helper.from_array(np.random.default_rng(0).standard_normal((8, 4)).astype(np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "mm",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], [weights])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_spinning_is_set_read_back_and_changes_no_result(tmp_path):
    path = matmul_model(tmp_path / "mm.onnx")
    feeds = {"x": np.random.default_rng(1).standard_normal((1, 8)).astype(np.float32)}
    spinning, still = OnnxRunner(path, threads=2), OnnxRunner(path, threads=2, spinning=False)
    assert spinning.session_info()["spinning"] is True and still.session_info()["spinning"] is False
    info = still.session_info()
    assert (info["intra_op_threads"], info["inter_op_threads"], info["execution_mode"]) == (2, 1, "ORT_SEQUENTIAL")
    assert info["graph_optimization_level"] == "ORT_ENABLE_ALL" and info["providers"] == ["CPUExecutionProvider"]
    assert np.array_equal(spinning.run(feeds)[0], still.run(feeds)[0])
    assert still.benchmark(feeds, warmup=1, runs=5).runs >= 5
