"""Calibration and validation data, from what users have: ``.npz``/``.npy`` arrays keyed by input name
(``samples.py``), a file of sentences with the model's tokenizer (``text.py``), or a folder of images with a
declared preprocessing (``images.py``). Every source becomes a ``SampleSet``: stacked samples per input."""

from __future__ import annotations

from .samples import LABELS_KEY, SampleSet, load_samples, synthetic_samples

__all__ = ["LABELS_KEY", "SampleSet", "load_samples", "synthetic_samples"]
