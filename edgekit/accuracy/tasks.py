"""Task-level agreement for masks (IoU of thresholded masks) and CTC sequences (greedy decode, then how many
decoded symbols agree), beside detection (``detection.py``)."""

from __future__ import annotations

import numpy as np

from .report import TaskAgreement

MASK_THRESHOLD = 0.5  # for maps in [0, 1]; logits are thresholded at 0


def mask_threshold(refs: list[np.ndarray]) -> float:
    """0.5 for probability maps (the original's values all in [0, 1]), 0 for logits."""
    values = [r for r in refs if r.size]
    unit = all(np.nanmin(r) >= 0.0 and np.nanmax(r) <= 1.0 for r in values)
    return MASK_THRESHOLD if unit else 0.0


def mask_agreement(refs: list[np.ndarray], cands: list[np.ndarray]) -> TaskAgreement:
    """IoU of the thresholded masks: pooled over samples (the budget's figure: intersections over unions, so a
    sample with a few mask pixels weighs little) and the worst sample. Two empty masks agree (IoU 1)."""
    threshold = mask_threshold(refs)
    inter = union = 0
    per_sample = []
    for ref, cand in zip(refs, cands):
        a, b = ref > threshold, np.nan_to_num(cand, nan=-np.inf) > threshold
        i, u = int(np.logical_and(a, b).sum()), int(np.logical_or(a, b).sum())
        inter, union = inter + i, union + u
        per_sample.append(i / u if u else 1.0)
    pooled = inter / union if union else 1.0
    return TaskAgreement("mask_iou", pooled, {"iou_min": min(per_sample), "iou_mean": float(np.mean(per_sample)),
                                              "threshold": threshold, "reference_mask_pixels":
                                              int(sum((r > threshold).sum() for r in refs))})


def sequence_axis(shape: tuple[int, ...]) -> int | None:
    """The time axis of a CTC output: ``[1, T, V]`` (1) or ``[T, 1, V]`` (0); None for other shapes."""
    if len(shape) != 3:
        return None
    return 1 if shape[0] == 1 else (0 if shape[1] == 1 else None)


def ctc_blank(refs: list[np.ndarray]) -> tuple[int, float, float]:
    """The likelier blank symbol (0 or the last), the share of positions where it is the arg-max, and how many
    times more often it wins than the commonest other symbol."""
    winners = np.concatenate([np.asarray(r).argmax(-1).ravel() for r in refs])
    vocabulary = refs[0].shape[-1]
    counts = np.bincount(winners, minlength=vocabulary)
    blank = 0 if counts[0] >= counts[vocabulary - 1] else vocabulary - 1
    others = np.delete(counts, blank)
    runner_up = int(others.max()) if others.size else 0
    return blank, float(counts[blank] / max(len(winners), 1)), float(counts[blank] / max(runner_up, 1))


def ctc_greedy(output: np.ndarray, blank: int) -> list[int]:
    """Best path: the arg-max per position, repeats collapsed, blanks dropped."""
    path = np.nan_to_num(np.asarray(output, np.float64), nan=-np.inf).argmax(-1).ravel()
    collapsed = path[np.r_[True, path[1:] != path[:-1]]]
    return [int(s) for s in collapsed if s != blank]


def edit_distance(a: list[int], b: list[int]) -> int:
    """Levenshtein distance (insertions, deletions, substitutions)."""
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


def sequence_agreement(refs: list[np.ndarray], cands: list[np.ndarray], blank: int | None = None) -> TaskAgreement:
    """Greedy-decode both models' outputs; the budget's figure is the symbol agreement, 1 - (edit distance over
    the original's symbols), pooled over samples; ``sequence_agreement`` is the share of samples decoded alike."""
    share = None
    if blank is None:
        blank, share, _ = ctc_blank(refs)
    distance = symbols = same = 0
    for ref, cand in zip(refs, cands):
        expected, got = ctc_greedy(ref, blank), ctc_greedy(cand, blank)
        distance += edit_distance(expected, got)
        symbols += len(expected)
        same += expected == got
    value = max(0.0, 1.0 - distance / symbols) if symbols else (1.0 if distance == 0 else 0.0)
    return TaskAgreement("symbol_agreement", value, {
        "sequence_agreement": same / len(refs), "edit_distance": distance, "reference_symbols": symbols,
        "blank": blank, "blank_share": share})
