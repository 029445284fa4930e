"""Each pipeline step on tiny models: the graph it produces and the numbers it computes."""

from pathlib import Path

import numpy as np
import onnx
import pytest

from edgekit.accuracy import cosine
from edgekit.data import SampleSet
from edgekit.exporter.onnx_graph import node_count, op_counts
from edgekit.exporter.sources import load_source
from edgekit.exporter.steps import STEPS, Artifact, StepContext, get_step
from edgekit.exporter.steps.export_onnx import export_onnx
from edgekit.runtime.onnxrt import OnnxRunner
from edgekit.specs import InputSpec
from edgekit.targets import load_target
from testkit import model_ref, smooth_images


@pytest.fixture(scope="module")
def cnn(tmp_path_factory):
    """The tiny CNN exported to ONNX once for all step tests."""
    folder = tmp_path_factory.mktemp("steps")
    source = load_source(model_ref("tiny_cnn"))
    calibration = SampleSet({"x": smooth_images(32, seed=3)}, None, "test")
    context = StepContext(profile=load_target("x86"), inputs=source.inputs, calibration=calibration)
    exported = export_onnx(source, folder / "exported.onnx", context, dynamic_batch=False)
    return source, context, exported, folder


def _outputs(path: Path, feeds) -> np.ndarray:
    return OnnxRunner(path).run(feeds)[0]


def test_registry_is_loud():
    assert {"simplify", "optimize", "quantize_static", "quantize_dynamic", "fp16"} <= set(STEPS)
    with pytest.raises(Exception, match="valid steps: fp16, .*optimize, prepare"):
        get_step("prune")


def test_export_matches_pytorch(cnn):
    source, _, exported, _ = cnn
    assert exported.details["exporter"] == "dynamo"
    assert exported.details["verify_max_abs_diff"] < 1e-4
    feeds = {"x": smooth_images(1, seed=9)}
    np.testing.assert_allclose(_outputs(exported.artifact.path, feeds), source.run(feeds)[0], atol=1e-4)


def _foldable_graph(path: Path) -> Artifact:
    """y = x * (2 + 3) through Identity nodes: constant folding leaves one Mul."""
    from onnx import TensorProto, helper

    two = helper.make_tensor("two", TensorProto.FLOAT, [1], [2.0])
    three = helper.make_tensor("three", TensorProto.FLOAT, [1], [3.0])
    nodes = [helper.make_node("Add", ["two", "three"], ["five"]), helper.make_node("Identity", ["five"], ["k"]),
             helper.make_node("Identity", ["x"], ["x1"]), helper.make_node("Mul", ["x1", "k"], ["y"])]
    graph = helper.make_graph(nodes, "foldable", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], [two, three])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    return Artifact(path, "onnx", "fp32")


def test_simplify_drops_nodes_and_keeps_numbers(tmp_path):
    artifact = _foldable_graph(tmp_path / "foldable.onnx")
    context = StepContext(profile=load_target("x86"), inputs=[InputSpec("x", (1, 4))])
    result = get_step("simplify").run(artifact, tmp_path / "simplified.onnx", context)
    assert result.details["check_ok"] is True
    assert (result.details["nodes_before"], result.details["nodes_after"]) == (4, 1)
    assert node_count(result.artifact.path) == 1
    feeds = {"x": np.arange(4, dtype=np.float32)[None]}
    np.testing.assert_allclose(_outputs(result.artifact.path, feeds), feeds["x"] * 5.0)


def test_simplify_checks_a_symbolic_size_at_the_data_size(tmp_path):
    """A published file's symbolic height and width: onnxsim's check runs at the calibration sample's size, where
    1x1 (a symbol taken as 1) would fail the unpadded 3x3 convolution."""
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.ones((2, 3, 3, 3), np.float32), "w")
    graph = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"])], "conv",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, "h", "w"])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 2, "oh", "ow"])], [weight])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "conv.onnx"))
    context = StepContext(profile=load_target("x86"), inputs=[InputSpec("x", ("batch", 3, "h", "w"))],
                          calibration=SampleSet({"x": smooth_images(2, seed=3)}, None, "test"))
    result = get_step("simplify").run(Artifact(tmp_path / "conv.onnx", "onnx", "fp32"), tmp_path / "s.onnx", context)
    assert result.details["check_ok"] is True
    dims = onnx.load(str(result.artifact.path)).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["batch", 3, "h", "w"], "the symbols stay in the file"


def test_optimize_basic_stays_portable(cnn):
    _, context, exported, folder = cnn
    result = get_step("optimize").run(exported.artifact, folder / "optimized.onnx", context)
    model = onnx.load(str(result.artifact.path))
    assert {o.domain for o in model.opset_import} <= {"", "ai.onnx"}, "no contrib/hardware ops in an artifact"
    assert {n.domain for n in model.graph.node} <= {"", "ai.onnx"}
    assert "BatchNormalization" not in op_counts(model)


def test_static_int8_is_qdq_and_within_budget(cnn):
    source, context, exported, folder = cnn
    base = get_step("optimize").run(exported.artifact, folder / "base.onnx", context).artifact
    result = get_step("quantize_static").run(base, folder / "int8.onnx", context)
    counts = op_counts(result.artifact.path)
    assert counts["QuantizeLinear"] > 0 and counts["DequantizeLinear"] > 0
    assert result.params["activation_type"] == "uint8" and result.params["per_channel"] is True
    fusion = result.details["host_fusion"]
    assert fusion["integer_ops"].get("QLinearConv", 0) == 2 and fusion["integer_ops"].get("QGemm", 0) == 1
    assert fusion["float_compute_ops"] == 0
    feeds = {"x": smooth_images(1, seed=11)}
    assert cosine(_outputs(result.artifact.path, feeds), source.run(feeds)[0]) > 0.99


def test_dynamic_int8_quantizes_matmuls_not_convs(tmp_path):
    source = load_source(model_ref("tiny_mlp"))
    context = StepContext(profile=load_target("x86"), inputs=source.inputs)
    exported = export_onnx(source, tmp_path / "mlp.onnx", context, dynamic_batch=False)
    result = get_step("quantize_dynamic").run(exported.artifact, tmp_path / "mlp.int8.onnx", context)
    assert result.details["quantized_ops"] == 2
    feeds = {"tokens": np.random.default_rng(0).standard_normal((1, 4, 32)).astype(np.float32)}
    assert cosine(_outputs(result.artifact.path, feeds), source.run(feeds)[0]) > 0.99
    cnn_source = load_source(model_ref("tiny_cnn"))
    cnn_onnx = export_onnx(cnn_source, tmp_path / "cnn.onnx", StepContext(load_target("x86"), cnn_source.inputs),
                           dynamic_batch=False)
    cnn_result = get_step("quantize_dynamic").run(cnn_onnx.artifact, tmp_path / "cnn.int8.onnx", context)
    assert "ConvInteger" not in op_counts(cnn_result.artifact.path)


def test_fp16_halves_weights_and_keeps_float_io(cnn):
    source, context, exported, folder = cnn
    result = get_step("fp16").run(exported.artifact, folder / "fp16.onnx", context)
    model = onnx.load(str(result.artifact.path))
    types = {init.data_type for init in model.graph.initializer if len(init.dims) > 1}
    assert types == {onnx.TensorProto.FLOAT16}
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    weight_bytes = {path: sum(len(i.raw_data) for i in onnx.load(str(path)).graph.initializer)
                    for path in (exported.artifact.path, result.artifact.path)}
    assert weight_bytes[result.artifact.path] <= 0.5 * weight_bytes[exported.artifact.path] + 64
    feeds = {"x": smooth_images(1, seed=12)}
    out = _outputs(result.artifact.path, feeds)
    assert out.dtype == np.float32 and cosine(out, source.run(feeds)[0]) > 0.999
