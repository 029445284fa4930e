"""Helpers shared by the tests (tests/) and the benchmarks (bench/): real agents on loopback, the tiny model
factories, the fuzzers' generators and campaigns, the real-model corpus, the third-party peers' glue.

Not part of edgekit: the wheel ships ``edgekit`` alone (pyproject.toml). Importable as ``testkit`` from the
repository root: pytest puts the root on ``sys.path`` (``[tool.pytest.ini_options] pythonpath``), a bench
script puts it there with one line, ``python -m testkit.corpus`` runs from the root.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
MODELS = Path(__file__).resolve().with_name("models.py")  # the tiny test models, loaded by path like a user's file


def model_ref(factory: str, models: Path = MODELS) -> str:
    """``"<path>/models.py:FACTORY"``: how a user names a model factory on the command line."""
    return f"{models}:{factory}"


def smooth_images(count: int, shape=(3, 8, 8), seed: int = 0) -> np.ndarray:
    """Image-like data: smooth, correlated pixels rather than white noise."""
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((count, shape[0], 1, 1)) + np.linspace(-1, 1, shape[1])[None, None, :, None]
    return (base + 0.3 * rng.standard_normal((count, *shape))).astype(np.float32)
