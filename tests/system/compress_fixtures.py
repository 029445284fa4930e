"""Shared by the compression tests: real digits data, model references, a one-format target, subprocess runs.

The data is scikit-learn's bundled 8x8 digits split exactly as samples/digits/train.py splits it, so the bundled
model's held-out set (samples/digits/val.npz) stays held out.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from testkit import REPO

TEACHER = f"{REPO / 'samples' / 'digits' / 'model.py'}:build"
MODELS = REPO / "testkit" / "compress_models.py"
STUDENT = f"{MODELS}:student"
STUDENT_BN = f"{MODELS}:student_bn"
FRAGILE = f"{MODELS}:fragile_digits"
VAL = REPO / "samples" / "digits" / "val.npz"
FAST = {"threads": 1, "measure": False}  # one thread: much faster on a shared 2-core machine


@pytest.fixture(scope="session", name="digits")
def digits_fixture(tmp_path_factory) -> dict[str, Path]:
    """train.npz (1437 labelled digits) and the bundled held-out val.npz (360)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    raw = load_digits()
    images = (raw.images / 16.0).astype(np.float32)[:, None]
    x_train, _, y_train, _ = train_test_split(images, raw.target.astype(np.int64), test_size=0.2, random_state=0,
                                              stratify=raw.target)
    folder = tmp_path_factory.mktemp("digits")
    np.savez(folder / "train.npz", image=x_train, labels=y_train)
    return {"train": folder / "train.npz", "val": VAL}


@pytest.fixture(scope="session", name="onnx_only_target")
def onnx_only_target_fixture(tmp_path_factory) -> Path:
    """FP32 ONNX on one thread: the quickest real before/after measurement."""
    path = tmp_path_factory.mktemp("target") / "onnx1.toml"
    path.write_text('formats = ["onnx"]\nprecisions = ["fp32"]\nthreads = 1\n')
    return path


def run_cli(*args, cwd: Path, nproc: int = 1, timeout: int = 600) -> subprocess.CompletedProcess:
    """``edgekit compress ...`` in a fresh process (under ``torchrun --nproc-per-node N`` when N > 1)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    if nproc > 1:
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc),
                    "-m", "edgekit.cli"]
    else:
        launcher = [sys.executable, "-m", "edgekit.cli"]
    return subprocess.run([*launcher, "compress", *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=timeout)


def load_weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(folder / "model.safetensors")


def max_difference(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a)
