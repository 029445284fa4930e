"""A float .tflite quantized with ai-edge-quantizer: static and dynamic INT8 of the digits model against its float
original, and the fixes older files need (no signature, deprecated operator codes, fp16 weights)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgekit.data.loading import load_data
from edgekit.errors import InputError
from edgekit.exporter.sources import load_source
from edgekit.exporter.steps.base import StepContext
from edgekit.exporter.steps.tflite_export import export_tflite
from edgekit.exporter.steps.tflite_quantize import normalize, quantize_tflite
from edgekit.runtime.litert import LiteRtRunner
from edgekit.targets import load_target

DIGITS = Path(__file__).resolve().parents[2] / "samples" / "digits"


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """The digits model as float (fp32 and fp16-weight) .tflite files, its context and its validation images."""
    folder = tmp_path_factory.mktemp("tflite_quantize")
    source = load_source(f"{DIGITS}/model.py:build")
    context = StepContext(profile=load_target("rpi"), inputs=source.inputs,
                          calibration=load_data(DIGITS / "calib.npz", source.inputs))
    for precision in ("fp32", "fp16"):
        export_tflite(source, folder / f"digits.{precision}.tflite", precision, context)
    images = load_data(DIGITS / "val.npz", source.inputs).inputs["image"]
    return folder, context, images


def outputs(path: Path, images: np.ndarray) -> np.ndarray:
    runner = LiteRtRunner(path, input_names=["image"])
    return np.concatenate([runner.run({"image": image[None]})[0] for image in images])


def agreement(got: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    """(top-1 agreement, minimum cosine) over the samples."""
    cosine = np.sum(got * ref, 1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(ref, axis=1))
    return float(np.mean(got.argmax(1) == ref.argmax(1))), float(cosine.min())


def old_style(content: bytes) -> bytes:
    """``content`` as older converters (MediaPipe's files) wrote it: no signature, op codes only in the deprecated
    field."""
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(content))
    model.signatureDefs = []
    for code in model.operatorCodes:
        code.deprecatedBuiltinCode, code.builtinCode = code.builtinCode, 0
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def test_static_int8_is_integer_and_tracks_the_float_model(digits):
    folder, context, images = digits
    result = quantize_tflite(folder / "digits.fp32.tflite", folder / "static.tflite", "int8_static", context)
    assert result.artifact.precision == "int8_static" and result.params["calibration_samples"] == 128
    assert result.details["fixes"] == []  # litert-torch's files need none
    assert result.details["int8_weights"] >= 4  # three convolutions and the classifier
    assert "float32" not in result.details["tensor_dtypes"]  # activations too, inputs and outputs included
    io = LiteRtRunner(result.artifact.path).io_quantization()
    assert io["inputs"]["args_0"]["dtype"] == "int8" and io["inputs"]["args_0"]["scale"] > 0
    top1, cosine = agreement(outputs(result.artifact.path, images), outputs(folder / "digits.fp32.tflite", images))
    assert top1 >= 0.97 and cosine > 0.95
    assert result.artifact.path.stat().st_size < 0.5 * (folder / "digits.fp32.tflite").stat().st_size


def test_dynamic_int8_keeps_convolutions_weight_only(digits):
    folder, context, images = digits
    result = quantize_tflite(folder / "digits.fp32.tflite", folder / "dynamic.tflite", "int8_dynamic", context)
    assert result.details["int8_weights"] == 4
    assert result.details["ops"]["DEQUANTIZE"] == 3  # the convolutions' weights; the classifier is hybrid
    top1, cosine = agreement(outputs(result.artifact.path, images), outputs(folder / "digits.fp32.tflite", images))
    assert top1 >= 0.99 and cosine > 0.999


def test_old_style_files_are_fixed_before_quantizing(digits, tmp_path):
    folder, context, images = digits
    for name in ("fp32", "fp16"):
        old = tmp_path / f"old.{name}.tflite"
        old.write_bytes(old_style((folder / f"digits.{name}.tflite").read_bytes()))
        _, fixes = normalize(old.read_bytes())
        assert any("deprecated_builtin_code" in fix for fix in fixes)
        assert any("signature" in fix for fix in fixes)
        assert any("fp16 weights widened" in fix for fix in fixes) == (name == "fp16")
        result = quantize_tflite(old, tmp_path / f"static.{name}.tflite", "int8_static", context)
        assert result.details["int8_weights"] >= 4
        top1, _ = agreement(outputs(result.artifact.path, images), outputs(folder / "digits.fp32.tflite", images))
        assert top1 >= 0.97


def test_a_quantized_model_is_refused(digits, tmp_path):
    folder, context, _ = digits
    static = quantize_tflite(folder / "digits.fp32.tflite", tmp_path / "static.tflite", "int8_static", context)
    with pytest.raises(InputError, match="tensors are quantized already"):
        quantize_tflite(static.artifact.path, tmp_path / "again.tflite", "int8_static", context)
