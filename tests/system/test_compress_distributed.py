"""Real multi-process runs under torchrun (gloo on CPU), and a real kill and resume.

Distillation of the bundled digits CNN into a BatchNorm-free student (so every process computes what one process
computes on the whole batch): 2 processes with DDP, and with FSDP2 sharding, give the weights of 1 process on the
same global batch, within float rounding; a run killed with SIGKILL resumes to exactly the uninterrupted result.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
from compress_fixtures import STUDENT, TEACHER, digits_fixture, load_weights, max_difference, run_cli  # noqa: F401

from edgekit.compress import distill
from edgekit.errors import InputError
from testkit import REPO

EPOCHS = 4
TOLERANCE = 1e-4  # float rounding of the gradient all-reduce; a different batch order moves weights by ~1e-2


def _distill_args(digits, out, *extra) -> list:
    return ["distill", "--teacher", TEACHER, "--student", STUDENT, "--train", digits["train"], "--val", digits["val"],
            "--epochs", EPOCHS, "--lr", "1e-3", "--batch-size", 64, "--out", out, "--no-measure", *extra]


def _distill(digits, out, **extra):
    """The same run through the Python API, in this process."""
    return distill(TEACHER, STUDENT, train=digits["train"], val=digits["val"], epochs=EPOCHS, lr=1e-3, batch_size=64,
                   out=out, measure=False, threads=1, **extra)


@pytest.fixture(scope="module")
def one_process(digits, tmp_path_factory):
    out = tmp_path_factory.mktemp("one") / "out"
    _distill(digits, out)
    return out


def test_two_gloo_processes_give_the_weights_of_one(digits, one_process, tmp_path):
    result = run_cli(*_distill_args(digits, tmp_path / "out"), cwd=tmp_path, nproc=2)
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((tmp_path / "out" / "compressed.json").read_text())
    assert record["provenance"]["world_size"] == 2 and record["provenance"]["backend"] == "gloo"
    assert record["training"]["max_weight_difference_across_ranks"] == 0.0  # identical weights on every rank
    difference = max_difference(load_weights(one_process), load_weights(tmp_path / "out"))
    print(f"1 vs 2 processes: max |Δw| = {difference:.3g}")
    assert difference < TOLERANCE
    single = json.loads((one_process / "compressed.json").read_text())["training"]["history"]
    for one, two in zip(single, record["training"]["history"], strict=True):
        assert two["train_loss"] == pytest.approx(one["train_loss"], abs=1e-5)
        assert two["val_accuracy"] == one["val_accuracy"]
    # rank 0 alone wrote: one result folder with its two files, no checkpoint or temp folder left
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [".edgekit-owned.json", "compressed.json",
                                                                    "model.safetensors"]
    assert result.stdout.count("result:") == 1  # and rank 0 alone printed


def test_the_tolerance_would_catch_a_different_batch_order(digits, one_process, tmp_path):
    _distill(digits, tmp_path / "out", seed=1)
    assert max_difference(load_weights(one_process), load_weights(tmp_path / "out")) > 100 * TOLERANCE


@pytest.mark.parametrize("shard", ["full", "hybrid"])  # FSDP2 on a 1-D mesh, and on a 2-D (1 node x 2) mesh
def test_fsdp2_sharded_run_gives_the_same_weights(digits, one_process, tmp_path, shard):
    result = run_cli(*_distill_args(digits, tmp_path / "out", "--shard", shard), cwd=tmp_path, nproc=2)
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((tmp_path / "out" / "compressed.json").read_text())
    assert record["provenance"]["sharding"] == shard and record["provenance"]["world_size"] == 2
    assert max_difference(load_weights(one_process), load_weights(tmp_path / "out")) < TOLERANCE


def test_a_batch_the_processes_cannot_split_is_refused(digits, tmp_path):
    result = run_cli(*_distill_args(digits, tmp_path / "out", "--batch-size", 63), cwd=tmp_path, nproc=2)
    assert result.returncode != 0
    assert "the batch size 63 does not divide among 2 processes" in result.stderr
    assert "hint: use a multiple of 2" in result.stderr
    assert "[rank" not in result.stderr and "edgekit/compress" not in result.stderr  # no traceback of ours
    assert result.stderr.count("does not divide") == 1  # rank 0 alone explains
    assert list(tmp_path.iterdir()) == []


def test_a_killed_run_resumes_to_the_same_result(digits, one_process, tmp_path):
    out = tmp_path / "out"
    command = [sys.executable, "-m", "edgekit.cli", "compress", *map(str, _distill_args(digits, out))]
    env = {"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = tmp_path / "out.checkpoints" / "state.json"
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None:
        if state.is_file() and json.loads(state.read_text())["epochs_done"] >= 1:
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    done = json.loads(state.read_text())["epochs_done"]
    assert 1 <= done < EPOCHS
    assert not out.exists()  # no half-written result
    with pytest.raises(InputError, match="interrupted run left a checkpoint") as refused:
        _distill(digits, out)
    assert "--resume" in refused.value.hint
    record = _distill(digits, out, resume=True).record
    assert record["training"]["resumed_from_epoch"] == done
    assert len(record["training"]["history"]) == EPOCHS
    assert max_difference(load_weights(one_process), load_weights(out)) == 0.0  # exactly the uninterrupted result
    assert not (tmp_path / "out.checkpoints").exists()
