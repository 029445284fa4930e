"""Bad input to the compression commands: each a clear error with a hint, exit code 2, nothing written."""

from __future__ import annotations

import numpy as np
import pytest
from compress_fixtures import STUDENT, TEACHER, digits_fixture  # noqa: F401 (fixture)
from typer.testing import CliRunner

from edgekit.cli import app
from edgekit.compress import distill, prune, qat
from edgekit.compress.distributed import check_batch, choose_backend, choose_device, launch_environment
from edgekit.errors import InputError
from testkit import model_ref

runner = CliRunner()


def _cli(tmp_path, *args):
    return runner.invoke(app, ["compress", *map(str, args)])


@pytest.mark.parametrize("amount", [0, 1, -0.1, 1.5])
def test_amount_outside_0_1_is_refused(digits, tmp_path, monkeypatch, amount):
    monkeypatch.chdir(tmp_path)
    result = _cli(tmp_path, "prune", TEACHER, "--amount", amount, "--train", digits["train"], "--epochs", 1)
    assert result.exit_code == 2
    assert "strictly between 0 and 1" in result.output and "hint:" in result.output
    assert "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []


def test_teacher_and_student_with_different_output_sizes(digits, tmp_path):
    with pytest.raises(InputError, match="the teacher outputs 10 classes and the student 5") as error:
        distill(TEACHER, model_ref("tiny_cnn"), train=digits["train"], out=tmp_path / "x", epochs=1, threads=1)
    assert "final layer" in error.value.hint
    assert list(tmp_path.iterdir()) == []


def test_data_with_wrong_keys(digits, tmp_path):
    bad = tmp_path / "bad.npz"
    with np.load(digits["train"]) as data:
        np.savez(bad, pixels=data["image"], labels=data["labels"])
    with pytest.raises(InputError, match=r"keys \['labels', 'pixels'\] do not match the model inputs \['image'\]"):
        prune(TEACHER, train=bad, out=tmp_path / "x", epochs=1, threads=1)


def test_data_with_wrong_shapes(digits, tmp_path):
    bad = tmp_path / "bad.npz"
    with np.load(digits["train"]) as data:
        np.savez(bad, image=data["image"][:, :, :4, :4], labels=data["labels"])
    with pytest.raises(InputError, match=r"samples have shape \(1, 4, 4\), the model wants image:1x1x8x8"):
        prune(TEACHER, train=bad, out=tmp_path / "x", epochs=1, threads=1)


def test_data_without_labels_or_with_labels_the_model_cannot_output(digits, tmp_path):
    with np.load(digits["train"]) as data:
        np.savez(tmp_path / "unlabelled.npz", image=data["image"])
        np.savez(tmp_path / "eleven.npz", image=data["image"], labels=data["labels"] + 1)
    with pytest.raises(InputError, match="has no 'labels' array"):
        qat(TEACHER, train=tmp_path / "unlabelled.npz", out=tmp_path / "x", threads=1)
    with pytest.raises(InputError, match=r"labels 1\.\.10, but the model outputs 10 classes"):
        prune(TEACHER, train=tmp_path / "eleven.npz", out=tmp_path / "x", epochs=1, threads=1)


def test_a_model_that_is_not_a_classifier(digits, tmp_path):
    with pytest.raises(InputError, match="takes 2 inputs"):
        prune(model_ref("two_inputs"), train=digits["train"], out=tmp_path / "x", threads=1)


def test_world_size_that_does_not_divide_the_batch():
    with pytest.raises(InputError, match="the batch size 63 does not divide among 2 processes") as error:
        check_batch(63, 2)
    assert "--batch-size 62" in error.value.hint
    assert check_batch(64, 2) == 32 and check_batch(64, 1) == 64


def test_backend_and_device_selection():
    assert choose_backend("cpu") == "gloo" and choose_backend("cuda:1") == "nccl"
    assert choose_backend("cuda:0", "gloo") == "gloo"  # allowed: gloo carries CUDA tensors too
    with pytest.raises(InputError, match="NCCL backend needs CUDA GPUs"):
        choose_backend("cpu", "nccl")
    with pytest.raises(InputError, match="unknown backend 'mpi'"):
        choose_backend("cpu", "mpi")
    assert choose_device("auto", 3, cuda_available=True) == "cuda:3"
    assert choose_device("auto", 3, cuda_available=False) == "cpu"
    assert choose_device("cpu", 0, cuda_available=True) == "cpu"
    with pytest.raises(InputError, match="no CUDA GPU"):
        choose_device("cuda", 0, cuda_available=False)
    assert launch_environment({}) == (1, 0, 0, 1)
    torchrun = {"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"}
    assert launch_environment(torchrun) == (4, 3, 1, 2)


def test_bad_training_settings_and_resume_without_checkpoint(digits, tmp_path):
    with pytest.raises(InputError, match="epochs must be at least 1"):
        prune(TEACHER, train=digits["train"], out=tmp_path / "x", epochs=0)
    with pytest.raises(InputError, match="temperature must be positive"):
        distill(TEACHER, STUDENT, train=digits["train"], temperature=0)
    with pytest.raises(InputError, match="nothing to resume"):
        prune(TEACHER, train=digits["train"], out=tmp_path / "x", epochs=1, resume=True, threads=1)
    with pytest.raises(InputError, match="QAT runs data parallel"):
        qat(TEACHER, train=digits["train"], sharding="full")
    with pytest.raises(InputError, match="fewer than one batch"):
        prune(TEACHER, train=digits["train"], out=tmp_path / "x", epochs=1, batch_size=4096, threads=1)
    assert list(tmp_path.iterdir()) == []


def test_an_onnx_model_cannot_be_trained(digits, tmp_path):
    import torch

    path = tmp_path / "m.onnx"
    torch.onnx.export(torch.nn.Linear(64, 10), (torch.zeros(1, 64),), str(path), dynamo=False)
    with pytest.raises(InputError, match="is an ONNX file; compression trains a PyTorch model"):
        prune(str(path), train=digits["train"], out=tmp_path / "x", threads=1)
