"""What published ONNX files bring, on tiny graphs built here: old opsets, dynamic and Paddle-style '?' dims,
If subgraphs with a scalar int64 input, symbolic shape inference failing, an op no runtime has."""

from __future__ import annotations

import os

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgekit.data import SampleSet
from edgekit.errors import ExportError, InputError
from edgekit.exporter.onnx_graph import default_opset, op_counts
from edgekit.exporter.pipeline import export
from edgekit.exporter.sources import load_source
from edgekit.exporter.steps import Artifact, StepContext, get_step
from edgekit.runtime.onnxrt import OnnxRunner
from edgekit.specs import parse_input_spec
from edgekit.targets import load_target

RNG = np.random.default_rng(0)
LOOSE = {"cosine_min": 0.9, "top1_agreement_min": 0.5}  # random tiny nets: the graph handling is under test here


def _conv_net(path, opset: int, dims, name: str = "x") -> None:
    """Conv -> Relu -> Conv -> GlobalAveragePool -> Flatten -> Gemm -> Softmax, input of the given dims."""
    weights = [numpy_helper.from_array(RNG.standard_normal(s).astype(np.float32) * 0.3, n) for n, s in (
        ("w1", (8, 3, 3, 3)), ("b1", (8,)), ("w2", (8, 8, 3, 3)), ("b2", (8,)), ("w3", (4, 8)), ("b3", (4,)))]
    nodes = [helper.make_node("Conv", [name, "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
             helper.make_node("GlobalAveragePool", ["c2"], ["p"], name="pool"),
             helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
             helper.make_node("Gemm", ["f", "w3", "b3"], ["logits"], name="head", transB=1),
             helper.make_node("Softmax", ["logits"], ["prob"], name="softmax", axis=1)]
    graph = helper.make_graph(nodes, "conv", [helper.make_tensor_value_info(name, TensorProto.FLOAT, dims)],
                              [helper.make_tensor_value_info("prob", TensorProto.FLOAT, [dims[0], 4])], weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 7
    onnx.save(model, str(path))


def _images(count: int, size=(16, 16), seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ramp = np.linspace(-1, 1, size[1])[None, None, None, :]
    return (rng.standard_normal((count, 3, 1, 1)) + ramp + 0.2 * rng.standard_normal((count, 3, *size))).astype(
        np.float32)


@pytest.fixture()
def data(tmp_path):
    np.savez(tmp_path / "calib.npz", x=_images(16, seed=1))
    np.savez(tmp_path / "val.npz", x=_images(8, seed=2))
    return tmp_path / "calib.npz", tmp_path / "val.npz"


def test_opset_11_model_with_dynamic_dims_is_fixed_upgraded_and_quantized_per_channel(tmp_path, data):
    _conv_net(tmp_path / "old.onnx", 11, ["p2o.DynamicDimension.0", 3, "p2o.DynamicDimension.1", "?"])
    result = export(str(tmp_path / "old.onnx"), "x86", out=tmp_path / "out", inputs=["x:1x3x16x16"],
                    calib=data[0], val=data[1], format="onnx", benchmark=False, accuracy=LOOSE)
    prepare = next(s for s in result.manifest["steps"] if s["step"] == "prepare")["details"]
    assert prepare["opset_before"] == 11 and prepare["opset"] == 13
    assert prepare["fixed_dims"] == {"x": [1, 3, 16, 16]}
    int8 = next(c for c in result.candidates if c.precision == "int8_static")
    assert int8.usable and int8.steps[0].params["per_channel"] is True
    model = onnx.load(str(int8.artifact.path))
    assert default_opset(model) == 13
    weight_dq = [n for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0].startswith("w1")]
    assert weight_dq and any(a.name == "axis" for a in weight_dq[0].attribute)
    fp32 = onnx.load(str(result.out_dir / "model.fp32.onnx"))
    assert [d.dim_value for d in fp32.graph.input[0].type.tensor_type.shape.dim] == [1, 3, 16, 16]


def test_failed_opset_upgrade_falls_back_to_per_tensor(tmp_path, data, monkeypatch):
    def refuse(model, version):
        raise RuntimeError("no adapter for op Foo")

    monkeypatch.setattr(onnx.version_converter, "convert_version", refuse)
    _conv_net(tmp_path / "old.onnx", 12, [1, 3, 16, 16])
    result = export(str(tmp_path / "old.onnx"), "x86", out=tmp_path / "out", calib=data[0], val=data[1],
                    format="onnx", benchmark=False, accuracy=LOOSE)
    prepare = next(s for s in result.manifest["steps"] if s["step"] == "prepare")["details"]
    assert prepare["opset"] == 12 and "no adapter for op Foo" in prepare["opset_upgrade"]
    int8 = next(c for c in result.candidates if c.precision == "int8_static")
    assert int8.usable and int8.steps[0].params["per_channel"] is False
    assert "opset 12 < 13" in int8.steps[0].details["per_tensor_because"]
    assert OnnxRunner(int8.artifact.path).run({"x": _images(1)})[0].shape == (1, 4)


def test_paddle_question_mark_dims_are_fixed_per_position(tmp_path):
    _conv_net(tmp_path / "m.onnx", 13, [-1, 3, "?", "?"])
    source = load_source(str(tmp_path / "m.onnx"), [parse_input_spec("x:1x3x16x24")])
    context = StepContext(load_target("x86"), source.inputs)
    result = get_step("prepare").run(Artifact(source.path, "onnx", "fp32"), tmp_path / "p.onnx", context)
    assert result.details["fixed_dims"] == {"x": [1, 3, 16, 24]}
    assert OnnxRunner(tmp_path / "p.onnx").run({"x": _images(1, (16, 24))})[0].shape == (1, 4)


def _if_model(path) -> None:
    """y = MatMul(x, W) * (2 if mode == 1 else 3), with ``mode`` a scalar int64 input and an If subgraph."""
    weight = numpy_helper.from_array(RNG.standard_normal((8, 8)).astype(np.float32), "w")
    two, three = (numpy_helper.from_array(np.array(v, np.float32), n) for v, n in ((2.0, "two"), (3.0, "three")))
    branch = lambda name, const: helper.make_graph(  # noqa: E731
        [helper.make_node("Mul", ["h", const], [f"{name}_out"], name=f"{name}_mul")], name, [],
        [helper.make_tensor_value_info(f"{name}_out", TensorProto.FLOAT, [1, 8])])
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"], name="matmul"),
             helper.make_node("Equal", ["mode", "one"], ["is_one"], name="equal"),
             helper.make_node("If", ["is_one"], ["y"], name="branch", then_branch=branch("then", "two"),
                              else_branch=branch("else", "three"))]
    graph = helper.make_graph(nodes, "if", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8]),
                                            helper.make_tensor_value_info("mode", TensorProto.INT64, [])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])],
                              [weight, two, three, numpy_helper.from_array(np.array(1, np.int64), "one")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


def test_if_subgraph_and_scalar_int64_input(tmp_path):
    _if_model(tmp_path / "if.onnx")
    x = np.random.default_rng(1).standard_normal((12, 8)).astype(np.float32)
    np.savez(tmp_path / "data.npz", x=x, mode=np.array([1, 0] * 6, np.int64))  # scalars: one per sample
    result = export(str(tmp_path / "if.onnx"), "x86", out=tmp_path / "out", calib=tmp_path / "data.npz",
                    val=tmp_path / "data.npz", format="onnx", benchmark=False)
    assert result.passed
    prepare = next(s for s in result.manifest["steps"] if s["step"] == "prepare")["details"]
    assert prepare["control_flow_left_in_float"] == ["branch (If)"]
    assert result.manifest["inputs"][1] == {"name": "mode", "shape": [], "dtype": "int64"}
    int8 = next(c for c in result.candidates if c.precision == "int8_static")
    assert int8.usable and int8.accuracy.cosine_min > 0.99
    assert op_counts(int8.artifact.path)["If"] == 1
    runner = OnnxRunner(int8.artifact.path)
    for mode, factor in ((1, 2.0), (0, 3.0)):
        got = runner.run({"x": x[:1], "mode": np.array(mode, np.int64)})[0]
        np.testing.assert_allclose(got, factor * (x[:1] @ onnx.numpy_helper.to_array(
            onnx.load(str(tmp_path / "if.onnx")).graph.initializer[0])), rtol=0.1, atol=0.1)


def test_float_data_for_an_int64_input_is_refused(tmp_path):
    _if_model(tmp_path / "if.onnx")
    np.savez(tmp_path / "data.npz", x=np.zeros((2, 8), np.float32), mode=np.array([1.0, 0.5]))
    with pytest.raises(InputError, match="input 'mode' takes int64 but the data holds float64"):
        export(str(tmp_path / "if.onnx"), "x86", out=tmp_path / "out", calib=tmp_path / "data.npz",
               format="onnx", benchmark=False)
    assert not (tmp_path / "out").exists()


def test_symbolic_shape_inference_failure_leaves_nothing_in_the_working_directory(tmp_path, monkeypatch):
    """ONNX Runtime's symbolic inference cannot finish this graph and writes sym_shape_infer_temp.onnx and
    <uuid>.data into the current directory; edgekit falls back to ONNX shape inference and leaves none."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    _upsample_concat_model(tmp_path / "m.onnx")
    bystander = tmp_path / "bystander"
    bystander.mkdir()
    monkeypatch.chdir(bystander)
    with pytest.raises(Exception, match="Incomplete symbolic shape inference"):
        quant_pre_process(str(tmp_path / "m.onnx"), str(tmp_path / "pre.onnx"), skip_optimization=True)
    assert "sym_shape_infer_temp.onnx" in os.listdir(bystander)  # the trap is real
    for leftover in os.listdir(bystander):
        os.remove(leftover)
    np.savez(tmp_path / "d.npz", x=_images(8))
    result = export(str(tmp_path / "m.onnx"), "x86", out=tmp_path / "out", calib=tmp_path / "d.npz",
                    val=tmp_path / "d.npz", format="onnx", benchmark=False)
    int8 = next(c for c in result.candidates if c.precision == "int8_static")
    assert int8.artifact is not None and int8.steps[0].details["shape_inference"].startswith("onnx (symbolic failed")
    assert os.listdir(bystander) == []


def _upsample_concat_model(path) -> None:
    """A feature-pyramid join on a dynamic H x W input: Concat(conv(x), Resize(stride-2 conv(x), x2)). Symbolic
    inference cannot prove H == 2 * ceil(H / 2) and stops, as on YOLO necks and OCR detectors."""
    weights = [numpy_helper.from_array(RNG.standard_normal(s).astype(np.float32) * 0.3, n) for n, s in (
        ("wa", (4, 3, 3, 3)), ("wb", (4, 3, 3, 3)), ("wc", (2, 8, 1, 1)))]
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")
    nodes = [helper.make_node("Conv", ["x", "wa"], ["a"], name="conv_a", pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["x", "wb"], ["b"], name="conv_b", pads=[1, 1, 1, 1], strides=[2, 2]),
             helper.make_node("Resize", ["b", "", "scales"], ["up"], name="up", mode="nearest"),
             helper.make_node("Concat", ["a", "up"], ["cat"], name="concat", axis=1),
             helper.make_node("Conv", ["cat", "wc"], ["y"], name="conv_c")]
    graph = helper.make_graph(nodes, "fpn", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                           ["batch", 3, "height", "width"])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 2, "height", "width"])],
                              [*weights, scales])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


def test_an_op_no_runtime_has_is_named_before_any_work(tmp_path):
    graph = helper.make_graph([helper.make_node("FancyNorm", ["x"], ["y"], name="fancy", domain="com.example")],
                              "custom", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)])
    onnx.save(model, str(tmp_path / "custom.onnx"))
    with pytest.raises(ExportError, match="ONNX Runtime cannot load .*FancyNorm"):
        export(str(tmp_path / "custom.onnx"), "x86", out=tmp_path / "out", format="onnx")
    assert not (tmp_path / "out").exists()


def test_a_file_that_is_not_a_model_is_a_clear_error(tmp_path):
    (tmp_path / "broken.onnx").write_bytes(b"\x08\x07garbage that is not protobuf")
    with pytest.raises(InputError, match="not a valid ONNX model"):
        export(str(tmp_path / "broken.onnx"), "x86", out=tmp_path / "out", format="onnx")


def test_sample_layouts_for_scalars_and_states():
    from edgekit.data import load_samples  # noqa: F401  (layouts are exercised through SampleSet here)

    samples = SampleSet({"audio": np.zeros((3, 512), np.float32), "state": np.ones((3, 2, 1, 128), np.float32),
                         "sr": np.full(3, 16000, np.int64)}, None, "t", per_sample=frozenset({"state", "sr"}))
    first = next(iter(samples))
    assert first["audio"].shape == (1, 512) and first["state"].shape == (2, 1, 128) and first["sr"].shape == ()
    assert samples.head(2).per_sample == {"state", "sr"}
