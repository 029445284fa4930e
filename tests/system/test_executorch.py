"""PyTorch -> ExecuTorch (.pte, XNNPACK): fp32 and PT2E INT8 of the digits model run by ExecuTorchRunner against
PyTorch, an INT8 far outside its budget rejected before its lowering, the nodes XNNPACK leaves out named with their
reasons, and the runner's process-wide thread pool."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from edgekit.data import SampleSet
from edgekit.data.loading import load_data
from edgekit.errors import AccuracyError, ExportError, InputError
from edgekit.exporter.sources import TorchSource, load_source
from edgekit.exporter.steps import executorch_export
from edgekit.exporter.steps.base import StepContext
from edgekit.exporter.steps.executorch_export import export_executorch
from edgekit.runtime.executorch import ExecuTorchRunner
from edgekit.specs import InputSpec, specs_from_arrays
from edgekit.targets import load_target
from testkit import smooth_images
from testkit.models import StackedYoloHead

DIGITS = Path(__file__).resolve().parents[2] / "samples" / "digits"


@pytest.fixture(scope="module")
def digits():
    source = load_source(f"{DIGITS}/model.py:build")
    context = StepContext(profile=load_target("x86"), inputs=source.inputs,
                          calibration=load_data(DIGITS / "calib.npz", source.inputs))
    val = load_data(DIGITS / "val.npz", source.inputs)
    expected = np.concatenate([source.run({"image": image[None]})[0] for image in val.inputs["image"]])
    return source, context, val, expected


@pytest.fixture(scope="module")
def lowered(tmp_path_factory, digits):
    source, context, _, _ = digits
    folder = tmp_path_factory.mktemp("executorch")
    return {p: export_executorch(source, folder / f"digits.{p}.pte", p, context) for p in ("fp32", "int8")}


def run_all(path: Path, images: np.ndarray) -> np.ndarray:
    runner = ExecuTorchRunner(path, input_names=["image"])
    return np.concatenate([runner.run({"image": image[None]})[0] for image in images])


def test_fp32_is_all_xnnpack_and_matches_pytorch(lowered, digits):
    _, _, val, expected = digits
    result = lowered["fp32"]
    assert result.artifact.format == "executorch" and result.artifact.path.is_file()
    delegation = result.details["delegation"]
    assert delegation["subgraphs"] == 1 and delegation["not_delegated"] == []
    assert delegation["delegated_ops"]["aten_convolution_default"] == 3
    assert result.details["verify_max_abs_diff"] < 1e-4
    assert np.abs(run_all(result.artifact.path, val.inputs["image"]) - expected).max() < 1e-4


def test_int8_is_quantized_inside_xnnpack_and_keeps_the_labels(lowered, digits):
    _, _, val, expected = digits
    result = lowered["int8"]
    assert result.params["calibration_samples"] == 128 and result.params["torch_export"] == "strict"
    delegation = result.details["delegation"]
    assert delegation["not_delegated"] == []
    assert delegation["delegated_ops"]["quantized_decomposed_dequantize_per_channel_default"] == 4  # 3 convs, linear
    assert result.artifact.path.stat().st_size < 0.5 * lowered["fp32"].artifact.path.stat().st_size
    got = run_all(result.artifact.path, val.inputs["image"])
    labels = val.labels
    assert np.mean(got.argmax(1) == expected.argmax(1)) >= 0.97
    assert np.mean(got.argmax(1) == labels) >= np.mean(expected.argmax(1) == labels) - 0.02
    simulation = result.details["pt2e_simulation"]  # what the check before the lowering measured
    assert simulation["samples"] == 8 and simulation["cosine_min"] > 0.99 and simulation["where"] == "output 'output_0'"
    assert "pt2e_simulation" not in lowered["fp32"].details


def test_int8_far_outside_the_budget_is_not_lowered(tmp_path, digits, monkeypatch):
    def lowered(*args, **kwargs):
        raise AssertionError("the lowering ran")

    torch.manual_seed(0)
    example = smooth_images(1)
    source = TorchSource("head", None, StackedYoloHead().eval(), specs_from_arrays(["x"], [example]), {"x": example})
    context = StepContext(profile=digits[1].profile, inputs=source.inputs,
                          calibration=SampleSet({"x": smooth_images(16, seed=1)}, None, "smooth test images"))
    monkeypatch.setattr(executorch_export, "_lower", lowered)
    with pytest.raises(AccuracyError, match="before lowering: PT2E's fake-quantized model reached cosine") as info:
        export_executorch(source, tmp_path / "h.pte", "int8", context)
    assert info.value.figures["where"] == "output 'output_0' rows 4–6, class scores"
    assert info.value.figures["simulated_cosine_min"] < 1 - 15 * (1 - context.profile.accuracy.cosine_min)
    assert not (tmp_path / "h.pte").exists()


class PartlySupported(torch.nn.Module):
    """A convolution XNNPACK takes, a mean over channels it refuses (only 4-D inner dims) and a cumsum it has no
    kernel for."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x).flatten(2)
        return torch.cumsum(y.mean(dim=1), dim=-1)


def test_nodes_left_out_of_xnnpack_are_named_with_the_reason(tmp_path, digits):
    module = PartlySupported().eval()
    example = np.random.default_rng(0).standard_normal((1, 3, 10, 10)).astype(np.float32)
    source = TorchSource("partly", None, module, [InputSpec("x", (1, 3, 10, 10))], {"x": example}, ["output_0"])
    context = StepContext(profile=digits[1].profile, inputs=source.inputs)
    result = export_executorch(source, tmp_path / "partly.pte", "fp32", context)
    left = {entry["op"]: entry["reason"] for entry in result.details["delegation"]["not_delegated"]}
    assert set(left) == {"aten.mean.dim", "aten.cumsum"}
    assert "4D" in left["aten.mean.dim"]
    assert left["aten.cumsum"] == "XNNPACK has no kernel for this op"
    assert result.details["delegation"]["delegated_ops"]["aten_convolution_default"] == 1
    assert result.details["verify_max_abs_diff"] < 1e-4  # the portable kernels run the rest


class DenseHead(torch.nn.Module):
    """A convolution and its PReLU, then a PReLU after a Linear on the flattened 2-D tensor, as MTCNN's RNet and
    ONet end."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.conv_act = torch.nn.Conv2d(3, 4, 3), torch.nn.PReLU(4)
        self.dense, self.dense_act = torch.nn.Linear(4 * 8 * 8, 16), torch.nn.PReLU(16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_act(self.conv(x)).permute(0, 3, 2, 1).contiguous()
        return self.dense_act(self.dense(x.view(x.shape[0], -1)))


def test_a_prelu_after_a_linear_is_lowered_with_the_rest(tmp_path, digits):
    # executorch 1.5's partitioner claimed the 2-D PReLU and its channels-last pass then failed on the whole model
    module = DenseHead().eval()
    images = np.random.default_rng(0).standard_normal((8, 1, 3, 10, 10)).astype(np.float32)
    np.savez(tmp_path / "calib.npz", x=images[:, 0])
    spec = InputSpec("x", (1, 3, 10, 10))
    source = TorchSource("dense", None, module, [spec], {"x": images[0]}, ["output_0"])
    context = StepContext(profile=digits[1].profile, inputs=source.inputs,
                          calibration=load_data(tmp_path / "calib.npz", [spec]))
    fp32 = export_executorch(source, tmp_path / "dense.fp32.pte", "fp32", context)
    delegation = fp32.details["delegation"]
    assert delegation["delegated_ops"]["aten_prelu_default"] == 1  # the convolution's, in XNNPACK
    assert {entry["op"] for entry in delegation["not_delegated"]} <= {"aten.gt.Scalar", "aten.where.self"}
    assert all(entry["reason"].startswith("part of a 2-D PReLU: XNNPACK is given PReLU on 4-D inputs only")
               for entry in delegation["not_delegated"])
    assert fp32.details["verify_max_abs_diff"] < 1e-4
    int8 = export_executorch(source, tmp_path / "dense.int8.pte", "int8", context)
    expected = np.concatenate([source.run({"x": image})[0] for image in images])
    runner = ExecuTorchRunner(int8.artifact.path, input_names=["x"])
    got = np.concatenate([runner.run({"x": image})[0] for image in images])
    assert np.corrcoef(expected.ravel(), got.ravel())[0, 1] > 0.99


def test_runner_interface_and_benchmark(lowered):
    runner = ExecuTorchRunner(lowered["fp32"].artifact.path, input_names=["image"])
    assert runner.input_specs() == {"image": {"shape": [1, 1, 8, 8], "dtype": "float32"}}
    assert runner.output_specs() == {"output_0": {"shape": [1, 10], "dtype": "float32"}}
    stats = runner.benchmark({"image": np.zeros((1, 1, 8, 8), np.float32)}, warmup=2, runs=20)
    assert stats.runs >= 20 and stats.threads == 1 and 0 < stats.p50_ms <= stats.p90_ms
    with pytest.raises(InputError, match="takes \\[1, 1, 8, 8\\]"):
        runner.run({"image": np.zeros((2, 1, 8, 8), np.float32)})


def test_the_thread_pool_is_resized_only_when_no_runner_holds_it(lowered):
    path = lowered["fp32"].artifact.path
    one = ExecuTorchRunner(path, threads=1)
    with pytest.raises(InputError, match="process-wide"):
        ExecuTorchRunner(path, threads=2)
    del one
    two = ExecuTorchRunner(path, threads=2)
    assert two.benchmark({"input_0": np.ones((1, 1, 8, 8), np.float32)}, warmup=1, runs=200).runs >= 200


def test_refusals(tmp_path, digits, lowered):
    source, context, _, _ = digits
    damaged = tmp_path / "damaged.pte"
    damaged.write_bytes(lowered["fp32"].artifact.path.read_bytes()[:200])
    with pytest.raises(InputError, match="not a loadable ExecuTorch program"):
        ExecuTorchRunner(damaged)
    with pytest.raises(ExportError, match="no fp16 route"):
        export_executorch(source, tmp_path / "x.pte", "fp16", context)
