"""Shared fixtures: references to the tiny test models and real .npz data files for them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

MODELS = Path(__file__).with_name("models.py")
REPO = Path(__file__).resolve().parent.parent


def model_ref(factory: str) -> str:
    return f"{MODELS}:{factory}"


def smooth_images(count: int, shape=(3, 8, 8), seed: int = 0) -> np.ndarray:
    """Image-like data: smooth, correlated pixels rather than white noise."""
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((count, shape[0], 1, 1)) + np.linspace(-1, 1, shape[1])[None, None, :, None]
    return (base + 0.3 * rng.standard_normal((count, *shape))).astype(np.float32)


@pytest.fixture(autouse=True)
def every_json_written_is_strict(request):
    """After each test that used ``tmp_path``: every ``.json`` file under it (manifests, validation.json,
    report.json, the agent's store records) parses with a strict parser (no NaN/Infinity tokens)."""
    yield
    if "tmp_path" not in request.fixturenames:
        return
    from edgekit.files import read_json

    folder = request.getfixturevalue("tmp_path")
    for path in folder.rglob("*.json"):
        if path.is_file():
            try:
                read_json(path)
            except ValueError as exc:
                pytest.fail(f"{path} is not strict JSON: {exc}")


@pytest.fixture(scope="session")
def cnn_data(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("cnn-data")
    np.savez(folder / "calib.npz", x=smooth_images(32, seed=1))
    np.savez(folder / "val.npz", x=smooth_images(24, seed=2))
    return {"calib": folder / "calib.npz", "val": folder / "val.npz"}
