"""Output kinds, from evidence, each recorded with the evidence in words.

``class``: a distribution or logits over a class axis, and something says so (the user declared it, labels were
given, rows are softmax rows summing to 1, or the output is named like logits/probabilities): top-1 applies.
``embedding``: rows of L2 norm 1 (or named like an embedding): cosine only, no top-1, no absolute error.
``detection``: a YOLO-style stacked head (four box channels, then scores in [0, 1]; ``groups.py``).
``sequence``: per-position softmax over >= 11 symbols where one edge symbol (0 or the last) wins the arg-max at
>= 20 % of positions and twice as often as any other: a CTC blank.
``mask``: a spatial ``[1, C, H, W]`` map that is nearly binary (most values near 0 or 1).
``regression``: everything else: cosine and absolute error, no arg-max check.

The user's ``--output NAME:KIND`` (and edgekit.toml; accepted kinds: ``edgekit.specs.OUTPUT_KINDS``) always
wins; the rest is inferred from the ORIGINAL's outputs on the validation samples, so every candidate of one export
is judged alike.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from .groups import StackedLayout, stacked_layout
from .tasks import ctc_blank, sequence_axis

_REGRESSION_NAMES = re.compile(r"box|coord|landmark|loc|offset|reg|anchor|point|kpt|keypoint|state", re.I)
_EMBEDDING_NAMES = re.compile(r"embed|pooler|sentence", re.I)
_CLASS_NAMES = re.compile(r"logit|prob|class|cls", re.I)
NORM_TOLERANCE = 1e-3
BLANK_SHARE = 0.2  # a CTC blank wins at least a fifth of the positions ...
BLANK_LEAD = 2.0  # ... and twice as many as any other symbol
MIN_SEQUENCE = 4
MIN_VOCABULARY = 11  # ten digits and a blank; smaller label sets (per-token tags, "O" first) stay class
NEAR_BINARY = 0.1  # a mask value within this of 0 or 1 ...
NEAR_BINARY_SHARE = 0.8  # ... for at least this share of the values
MIN_MASK_SIDE = 8


@dataclass(frozen=True)
class OutputKind:
    """An output's kind, why, and (for a stacked output) its channel groups."""

    kind: str
    evidence: str
    declared: bool = False
    layout: StackedLayout | None = None
    blank: int | None = None  # sequence: the CTC blank symbol


def is_classifier_output(array: np.ndarray) -> bool:
    """A (batch, classes) float output with more than one class."""
    return array.ndim == 2 and array.shape[-1] > 1 and np.issubdtype(array.dtype, np.floating)


def is_probability_output(arrays: list[np.ndarray]) -> bool:
    """Every vector along the last axis (over more than one class) is non-negative and sums to 1: a softmax."""
    first = arrays[0]
    if first.ndim < 2 or first.shape[-1] < 2 or not np.issubdtype(first.dtype, np.floating):
        return False
    return all(a.min(initial=0.0) >= -1e-6 and np.allclose(a.sum(-1, dtype=np.float64), 1.0, atol=1e-3)
               for a in arrays)


def is_normalised_output(arrays: list[np.ndarray]) -> bool:
    """Every row along the last axis (of at least 2 values) has L2 norm 1: a normalised embedding."""
    first = arrays[0]
    if first.ndim < 2 or first.shape[-1] < 2 or not np.issubdtype(first.dtype, np.floating):
        return False
    return all(np.allclose(np.linalg.norm(a.astype(np.float64), axis=-1), 1.0, atol=NORM_TOLERANCE) for a in arrays)


def near_binary_share(arrays: list[np.ndarray]) -> float:
    """Share of values within ``NEAR_BINARY`` of 0 or 1, for maps entirely in [0, 1] (else 0)."""
    values = np.concatenate([a.ravel() for a in arrays]).astype(np.float64)
    if not values.size or not np.isfinite(values).all() or values.min() < 0.0 or values.max() > 1.0:
        return 0.0
    return float(np.mean((values <= NEAR_BINARY) | (values >= 1.0 - NEAR_BINARY)))


def declared_kind(kind: str, arrays: list[np.ndarray]) -> OutputKind:
    """The user's kind, with what it needs measured (a detection head's groups, a sequence's blank)."""
    layout = stacked_layout(arrays) if kind in ("regression", "detection") else None
    if kind == "detection" and (layout is None or not layout.is_yolo):
        raise InputError(f"an output declared 'detection' has shape {list(arrays[0].shape)}, not a YOLO-style "
                         "head ([1, 4+C, N] or [1, N, 5+C]: four box channels, then scores in [0, 1])",
                         hint="declare it regression (cosine per channel group) or leave it to be inferred")
    blank = ctc_blank(arrays)[0] if kind == "sequence" else None
    return OutputKind(kind, "declared", True, layout, blank)


def explain_output_kind(name: str, arrays: list[np.ndarray], labels: np.ndarray | None = None) -> OutputKind:
    """Infer ``name``'s kind from the original's outputs ``arrays`` (one per sample) and say why."""
    first = arrays[0]
    if not np.issubdtype(first.dtype, np.floating):
        return OutputKind("regression", f"{first.dtype} values: compared as numbers")
    layout = stacked_layout(arrays)
    if layout is not None and layout.is_yolo:
        return OutputKind("detection", f"a YOLO-style head: {layout.describe()}", layout=layout)
    if _REGRESSION_NAMES.search(name):
        return OutputKind("regression", f"named like boxes, coordinates or states ('{name}')", layout=layout)
    if _EMBEDDING_NAMES.search(name):
        return OutputKind("embedding", f"named like an embedding ('{name}')")
    probability = is_probability_output(arrays)
    if probability and sequence_axis(first.shape) is not None and first.shape[-1] >= MIN_VOCABULARY:
        blank, share, lead = ctc_blank(arrays)
        time = first.shape[sequence_axis(first.shape)]
        if share >= BLANK_SHARE and lead >= BLANK_LEAD and time >= MIN_SEQUENCE:
            return OutputKind("sequence", f"softmax over {first.shape[-1]} symbols at {time} positions; symbol "
                                          f"{blank} is the arg-max at {share:.0%} of them, {lead:.1f}x as often as "
                                          "any other: a CTC blank", blank=blank)
    if probability:
        return OutputKind("class", f"softmax rows over {first.shape[-1]} classes: non-negative, each sums to 1")
    if is_normalised_output(arrays):
        return OutputKind("embedding", f"rows of {first.shape[-1]} values with L2 norm 1 (±{NORM_TOLERANCE:g}): "
                                       "a normalised embedding")
    if labels is not None and is_classifier_output(first) and len(labels) and 0 <= labels.min() \
            and labels.max() < first.shape[-1]:
        return OutputKind("class", f"(batch, {first.shape[-1]}) scores and class labels 0–{int(labels.max())} given")
    if is_classifier_output(first) and _CLASS_NAMES.search(name):
        return OutputKind("class", f"(batch, {first.shape[-1]}) scores named like logits or probabilities "
                                   f"('{name}')")
    if layout is not None:
        return OutputKind("regression", f"stacked: {layout.describe()}", layout=layout)
    if first.ndim == 4 and min(first.shape[2:]) >= MIN_MASK_SIDE and first.shape[1] <= 4:
        share = near_binary_share(arrays)
        if share >= NEAR_BINARY_SHARE:
            return OutputKind("mask", f"a {list(first.shape)} map in [0, 1], {share:.0%} of its values within "
                                      f"{NEAR_BINARY} of 0 or 1: a mask")
    return OutputKind("regression", "no evidence of classes, an embedding, a mask or a sequence: compared by "
                                    "cosine and absolute error")


def infer_output_kind(name: str, arrays: list[np.ndarray], outputs: int = 1,
                      labels: np.ndarray | None = None) -> str:
    """The inferred kind alone (``explain_output_kind`` gives the evidence too). ``outputs`` is kept for callers
    of the earlier rule; a sole output is no longer evidence of classes."""
    return explain_output_kind(name, arrays, labels).kind
