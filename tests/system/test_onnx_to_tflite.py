"""An ONNX file -> TFLite through onnx2torch and litert-torch: FP32 equal to ONNX Runtime, static INT8 close to it,
on a graph with what published files need fixed (Constant nodes, Reshape/Resize/Slice shapes read at run time, a
Gemm's transposed weight)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgekit.data import SampleSet
from edgekit.exporter.steps.base import StepContext
from edgekit.exporter.steps.onnx_to_tflite import onnx_to_tflite
from edgekit.runtime.litert import LiteRtRunner
from edgekit.runtime.onnxrt import OnnxRunner
from edgekit.specs import InputSpec
from edgekit.targets import load_target
from testkit import smooth_images


class UpsampleHead(torch.nn.Module):
    """Convolutions, a nearest 2x Resize, a Slice, a Reshape by constants and a Gemm, as in detectors' and OCR
    heads."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.down = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, stride=2, padding=1), torch.nn.ReLU())
        self.up = torch.nn.Conv2d(8, 4, 3, padding=1)
        self.classify = torch.nn.Linear(4 * 14 * 16, 10)  # a Gemm: onnx2torch keeps its weight as a transposed view

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.nn.functional.interpolate(self.down(x), scale_factor=2.0, mode="nearest")
        return self.classify(self.up(y)[:, :, 1:-1].reshape(1, -1)).softmax(-1)


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("onnx_to_tflite") / "head.onnx"
    torch.onnx.export(UpsampleHead().eval(), (torch.zeros(1, 3, 16, 16),), str(path), input_names=["x"],
                      opset_version=13, dynamo=False)  # the TorchScript exporter writes shapes as Constant nodes
    return path


@pytest.fixture(scope="module")
def context():
    images = smooth_images(24, shape=(3, 16, 16), seed=1)
    return StepContext(profile=load_target("rpi"), inputs=[InputSpec("x", (1, 3, 16, 16))],
                       calibration=SampleSet({"x": images}, None, "smooth test images"))


def compare(onnx_path, tflite_path) -> tuple[float, float]:
    """(max abs difference, min cosine) of LiteRT against ONNX Runtime on held-out images."""
    reference, converted = OnnxRunner(onnx_path), LiteRtRunner(tflite_path, input_names=["x"])
    worst, cosines = 0.0, []
    for image in smooth_images(8, shape=(3, 16, 16), seed=2):
        a, b = reference.run({"x": image[None]})[0].ravel(), converted.run({"x": image[None]})[0].ravel()
        worst = max(worst, float(np.abs(a - b).max()))
        cosines.append(float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b))))
    return worst, min(cosines)


def test_fp32_equals_onnx_runtime(onnx_file, context, tmp_path):
    result = onnx_to_tflite(onnx_file, tmp_path / "head.fp32.tflite", "fp32", context)
    assert result.step == "onnx_to_tflite" and result.params["converter"].startswith("onnx2torch ")
    assert result.details["constants_to_initializers"] >= 1
    assert result.details["static_shapes_written"] == {"OnnxResize": 1, "OnnxSlice": 1, "OnnxReshape": 1}
    assert result.details["onnx2torch_max_abs_diff"] < 1e-5 and result.details["verify_max_abs_diff"] < 1e-5
    worst, _ = compare(onnx_file, result.artifact.path)
    assert worst < 1e-5


def test_int8_static_is_integer_and_close(onnx_file, context, tmp_path):
    result = onnx_to_tflite(onnx_file, tmp_path / "head.int8.tflite", "int8_static", context)
    assert result.details["inputs"][0]["dtype"] == "int8" and result.params["calibration_samples"] == 24
    _, cosine = compare(onnx_file, result.artifact.path)
    assert cosine > 0.99


def test_the_files_symbolic_batch_is_converted_as_one(tmp_path):
    """A published file's symbolic batch (the static-batch default): converted at batch 1, equal to ONNX Runtime."""
    path = tmp_path / "batch.onnx"
    module = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU()).eval()
    torch.onnx.export(module, (torch.zeros(1, 3, 16, 16),), str(path), input_names=["x"],
                      dynamic_axes={"x": {0: "batch"}}, dynamo=False)
    context = StepContext(profile=load_target("rpi"), inputs=[InputSpec("x", ("batch", 3, 16, 16))],
                          calibration=SampleSet({"x": smooth_images(4, shape=(3, 16, 16), seed=1)}, None, "test"))
    result = onnx_to_tflite(path, tmp_path / "batch.tflite", "fp32", context)
    assert result.details["inputs"][0]["shape"] == [1, 3, 16, 16]
    worst, _ = compare(path, result.artifact.path)
    assert worst < 1e-5
