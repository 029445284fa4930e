"""The numbers every output kind shares: cosine, absolute error, top-1 agreement, non-finite counts, and ``worst``
(a NaN figure never looks better than a real one)."""

from __future__ import annotations

import math

import numpy as np


def worst(values: list[float], pick) -> float:
    """``pick`` (min or max) of ``values``, NaN if any of them is not finite: ``min`` over a list with a NaN in it
    depends on the order, and a NaN figure must never look better than a real one."""
    return pick(values) if all(math.isfinite(v) for v in values) else math.nan


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a64, b64 = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    if not (np.isfinite(a64).all() and np.isfinite(b64).all()):
        return math.nan
    na, nb = np.linalg.norm(a64), np.linalg.norm(b64)
    if na == 0.0 and nb == 0.0:
        return 1.0
    if na == 0.0 or nb == 0.0:
        return 0.0
    return float(np.dot(a64, b64) / (na * nb))


def top1_agreement(refs: list[np.ndarray], cands: list[np.ndarray]) -> float:
    """Share of class vectors (per sample and, for sequences, per position) whose arg-max agrees."""
    agree = [np.asarray(r).argmax(-1) == np.asarray(c).argmax(-1) for r, c in zip(refs, cands)]
    return float(np.mean(np.concatenate([a.ravel() for a in agree])))


def closeness(refs: list[np.ndarray], cands: list[np.ndarray]) -> tuple[float, float, float, float]:
    """(cosine min, cosine mean, max abs error, mean abs error) over samples; NaN where a sample is not finite."""
    errors = [np.abs(c.astype(np.float64) - r.astype(np.float64)) for r, c in zip(refs, cands)]
    cosines = [cosine(r, c) for r, c in zip(refs, cands)]
    return (worst(cosines, min), float(np.mean(cosines)), worst([float(e.max(initial=0.0)) for e in errors], max),
            float(np.mean([e.mean() if e.size else 0.0 for e in errors])))


def nonfinite_samples(arrays: list[np.ndarray]) -> dict[str, int]:
    """How many samples hold a NaN, and how many an inf (float outputs only)."""
    floats = [a for a in arrays if np.issubdtype(a.dtype, np.floating)]
    counts = {"nan": sum(bool(np.isnan(a).any()) for a in floats), "inf": sum(bool(np.isinf(a).any()) for a in floats)}
    return {kind: count for kind, count in counts.items() if count}
