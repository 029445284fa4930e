"""PyTorch -> TFLite: each precision's dtypes and numbers against PyTorch, the NHWC variant, and failures."""

from __future__ import annotations

import sys
from collections import Counter

import numpy as np
import pytest

pytest.importorskip("litert_torch")

from ai_edge_litert.interpreter import Interpreter  # noqa: E402

from edgekit.data import SampleSet  # noqa: E402
from edgekit.errors import AccuracyError, ExportError, InputError  # noqa: E402
from edgekit.exporter.sources import TorchSource, load_source  # noqa: E402
from edgekit.exporter.steps.base import StepContext  # noqa: E402
from edgekit.exporter.steps.tflite_export import export_tflite  # noqa: E402
from edgekit.specs import specs_from_arrays  # noqa: E402
from edgekit.targets import load_target  # noqa: E402
from testkit import model_ref, smooth_images  # noqa: E402

VAL = smooth_images(16, seed=2)


@pytest.fixture(scope="module")
def cnn():
    return load_source(model_ref("tiny_cnn"))


@pytest.fixture(scope="module")
def context(cnn):
    calibration = SampleSet({"x": smooth_images(32, seed=1)}, None, "smooth test images")
    return StepContext(profile=load_target("mobile"), inputs=cnn.inputs, calibration=calibration)


@pytest.fixture(scope="module")
def converted(tmp_path_factory, cnn, context):
    """``converted(precision, channels_last=False)``: each conversion runs once per module."""
    folder, done = tmp_path_factory.mktemp("tflite"), {}

    def get(precision: str, channels_last: bool = False):
        key = (precision, channels_last)
        if key not in done:
            out = folder / f"{precision}{'_nhwc' if channels_last else ''}.tflite"
            done[key] = export_tflite(cnn, out, precision, context, channels_last=channels_last)
        return done[key]

    return get


@pytest.fixture(scope="module")
def expected(cnn):
    return np.concatenate([cnn.run({"x": VAL[i:i + 1]})[0] for i in range(len(VAL))])


def run_tflite(result, images: np.ndarray) -> np.ndarray:
    """Feed samples one by one, quantizing/dequantizing with the scale and zero-point the step recorded."""
    interpreter = Interpreter(model_path=str(result.artifact.path))
    runner = interpreter.get_signature_runner()
    given, produced = result.details["inputs"][0], result.details["outputs"][0]
    outputs = []
    for image in images:
        feed = image[None]
        if "scale" in given:
            feed = np.clip(np.round(feed / given["scale"]) + given["zero_point"], -128, 127).astype(given["dtype"])
        out = runner(args_0=feed)["output_0"]
        if "scale" in produced:
            out = (out.astype(np.float32) - produced["zero_point"]) * produced["scale"]
        outputs.append(out)
    return np.concatenate(outputs)


def tensor_dtypes(result) -> Counter:
    interpreter = Interpreter(model_path=str(result.artifact.path))
    return Counter(np.dtype(t["dtype"]).name for t in interpreter.get_tensor_details())


def io_dtypes(result) -> tuple[str, str]:
    runner = Interpreter(model_path=str(result.artifact.path)).get_signature_runner()
    return (np.dtype(runner.get_input_details()["args_0"]["dtype"]).name,
            np.dtype(runner.get_output_details()["output_0"]["dtype"]).name)


def min_cosine(got: np.ndarray, ref: np.ndarray) -> float:
    return float(np.min(np.sum(got * ref, 1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(ref, axis=1))))


def test_fp32_matches_pytorch(converted, expected):
    result = converted("fp32")
    assert result.step == "export_tflite" and result.artifact.format == "tflite"
    assert result.artifact.path.is_file() and result.seconds > 0
    assert io_dtypes(result) == ("float32", "float32")
    assert result.params["input_layout"] == "NCHW" and result.details["inputs"][0]["shape"] == [1, 3, 8, 8]
    assert result.details["verify_max_abs_diff"] < 1e-5
    assert np.abs(run_tflite(result, VAL) - expected).max() < 1e-5


def test_int8_static_has_int8_io_and_tracks_pytorch(converted, expected):
    result = converted("int8_static")
    assert result.artifact.precision == "int8_static"
    assert io_dtypes(result) == ("int8", "int8")
    assert result.details["inputs"][0]["scale"] > 0 and result.details["outputs"][0]["scale"] > 0
    assert result.params["calibration_samples"] == 32 and result.params["per_channel"] is True
    assert tensor_dtypes(result)["int8"] >= 3 + 2  # conv, conv, linear weights plus the int8 I/O
    assert min_cosine(run_tflite(result, VAL), expected) > 0.99
    simulation = result.details["pt2e_simulation"]  # what the check before the conversion measured
    assert simulation["samples"] == 8 and simulation["cosine_min"] > 0.99 and simulation["where"] == "output 'output_0'"


@pytest.mark.parametrize("precision, weight_dtype", [("fp16", "float16"), ("int8_dynamic", "int8")])
def test_weight_precisions_keep_float_io(converted, expected, precision, weight_dtype):
    result = converted(precision)
    assert io_dtypes(result) == ("float32", "float32")
    assert "scale" not in result.details["inputs"][0]
    assert tensor_dtypes(result)[weight_dtype] == 3  # conv, conv, linear weights
    assert result.details["tensor_dtypes"][weight_dtype] == 3
    assert result.details["verify_max_abs_diff"] < 1e-5  # the fp32 conversion it started from
    assert min_cosine(run_tflite(result, VAL), expected) > 0.99


def test_channels_last_takes_nhwc(converted, expected):
    result = converted("fp32", channels_last=True)
    assert result.params["input_layout"] == "NHWC" and result.details["input_layout"] == "NHWC"
    assert result.details["inputs"][0]["shape"] == [1, 8, 8, 3]
    assert np.abs(run_tflite(result, VAL.transpose(0, 2, 3, 1)) - expected).max() < 1e-5


def test_channels_last_leaves_non_image_inputs_alone(tmp_path, context):
    source = load_source(model_ref("tiny_mlp"))
    result = export_tflite(source, tmp_path / "mlp.tflite", "fp32", StepContext(context.profile, source.inputs),
                           channels_last=True)
    assert result.params["input_layout"] == "NCHW" and result.details["inputs"][0]["shape"] == [1, 4, 32]
    assert result.details["verify_max_abs_diff"] < 1e-5


def test_int8_static_keeps_residual_adds_integer(tmp_path, context):
    import torch

    class Residual(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 3, 3, padding=1)

        def forward(self, x):
            return x + torch.relu(self.conv(x))

    torch.manual_seed(0)
    example = smooth_images(1)
    source = TorchSource("residual", None, Residual().eval(), specs_from_arrays(["x"], [example]), {"x": example})
    result = export_tflite(source, tmp_path / "r.tflite", "int8_static", context)
    assert result.params["torch_export"] == "strict"
    assert "float32" not in tensor_dtypes(result)  # no float ADD island between QUANTIZE/DEQUANTIZE


def test_int8_static_far_outside_the_budget_is_not_converted(tmp_path, context, monkeypatch):
    import litert_torch
    import torch

    class Cancelling(torch.nn.Module):
        """Two convolutions 0.1 % apart, subtracted: the difference is far below either one's int8 step."""

        def __init__(self):
            super().__init__()
            self.a, self.b = torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.Conv2d(3, 4, 3, padding=1)
            with torch.no_grad():
                self.b.weight.copy_(self.a.weight * 1.001)
                self.b.bias.copy_(self.a.bias)

        def forward(self, x):
            return self.a(x) - self.b(x)

    def converted(*args, **kwargs):
        raise AssertionError("litert_torch.convert ran")

    torch.manual_seed(0)
    example = smooth_images(1)
    source = TorchSource("cancelling", None, Cancelling().eval(), specs_from_arrays(["x"], [example]), {"x": example})
    monkeypatch.setattr(litert_torch, "convert", converted)
    with pytest.raises(AccuracyError, match="before conversion: PT2E's fake-quantized model reached cosine") as info:
        export_tflite(source, tmp_path / "c.tflite", "int8_static", context)
    assert info.value.figures["simulated_cosine_min"] < 1 - 15 * (1 - context.profile.accuracy.cosine_min)
    assert not (tmp_path / "c.tflite").exists()


def test_int8_static_judges_the_simulation_per_channel_group(tmp_path, context):
    import torch

    from testkit.models import StackedYoloHead

    torch.manual_seed(0)
    example = smooth_images(1)
    source = TorchSource("head", None, StackedYoloHead().eval(), specs_from_arrays(["x"], [example]), {"x": example})
    with pytest.raises(AccuracyError, match="before conversion") as info:
        export_tflite(source, tmp_path / "h.tflite", "int8_static", context)
    assert info.value.figures["where"] == "output 'output_0' rows 4–6, class scores"
    assert not (tmp_path / "h.tflite").exists()


def test_unsupported_op_names_the_op(tmp_path, context):
    source = load_source(model_ref("unsupported_op"))
    with pytest.raises(ExportError, match="edgekit_test::mystery") as info:
        export_tflite(source, tmp_path / "m.tflite", "fp32", StepContext(context.profile, source.inputs))
    assert "RuntimeError" in str(info.value) and not (tmp_path / "m.tflite").exists()


def test_dynamic_batch_is_refused(tmp_path, cnn, context):
    dynamic = StepContext(context.profile, [s.with_dynamic_batch() for s in cnn.inputs], context.calibration)
    with pytest.raises(ExportError, match="static shapes") as info:
        export_tflite(cnn, tmp_path / "m.tflite", "fp32", dynamic)
    assert "--dynamic-batch" in info.value.hint


def test_int8_static_needs_calibration(tmp_path, cnn, context):
    with pytest.raises(InputError, match="calibration"):
        export_tflite(cnn, tmp_path / "m.tflite", "int8_static", StepContext(context.profile, cnn.inputs))


def test_missing_litert_torch_names_the_extra(tmp_path, cnn, context, monkeypatch):
    monkeypatch.setitem(sys.modules, "litert_torch", None)
    with pytest.raises(ExportError) as info:
        export_tflite(cnn, tmp_path / "m.tflite", "fp32", context)
    assert info.value.hint.startswith("install edgekit's 'tflite' extra from its checkout: pip install -e '.[tflite]'")
