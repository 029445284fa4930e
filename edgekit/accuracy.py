"""The accuracy gate: compare a candidate's outputs with the original's on validation samples.

Each output has a kind, declared by the user or inferred conservatively from the original's outputs:
``class`` (a probability or logit vector over classes: top-1 agreement and label accuracy apply),
``regression`` (boxes, coordinates, maps, states: cosine and absolute error) or ``embedding`` (cosine).

It fails closed: a non-finite output (NaN, inf) is a violation of its own, and a figure that is not a number
breaks every budget that reads it (``nan < limit`` is false, so each check asks "is it finite and within").
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field

import numpy as np

_REGRESSION_NAMES = re.compile(r"box|coord|landmark|loc|offset|reg|anchor|point|kpt|keypoint|state", re.I)
_EMBEDDING_NAMES = re.compile(r"embed|pooler|sentence", re.I)
_CLASS_NAMES = re.compile(r"logit|prob|class|cls", re.I)


@dataclass
class OutputAccuracy:
    """Figures for one output over all samples."""

    name: str
    cosine_min: float
    cosine_mean: float
    max_abs_error: float
    mean_abs_error: float
    top1_agreement: float | None = None
    kind: str = "regression"
    kind_declared: bool = False
    nonfinite: dict[str, int] = field(default_factory=dict)  # "nan"/"inf" -> samples whose candidate output has it
    reference_nonfinite: dict[str, int] = field(default_factory=dict)  # the same for the original's output


@dataclass
class AccuracyReport:
    samples: int
    outputs: list[OutputAccuracy]
    label_accuracy: float | None = None
    reference_label_accuracy: float | None = None
    violations: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.violations

    @property
    def cosine_min(self) -> float:
        return worst([o.cosine_min for o in self.outputs], min)

    @property
    def max_abs_error(self) -> float:
        return worst([o.max_abs_error for o in self.outputs], max)

    @property
    def top1_agreement(self) -> float | None:
        values = [o.top1_agreement for o in self.outputs if o.top1_agreement is not None]
        return worst(values, min) if values else None

    def to_dict(self) -> dict:
        return {"samples": self.samples, "passed": self.passed, "cosine_min": self.cosine_min,
                "max_abs_error": self.max_abs_error, "top1_agreement": self.top1_agreement,
                "label_accuracy": self.label_accuracy,
                "reference_label_accuracy": self.reference_label_accuracy,
                "outputs": [asdict(o) for o in self.outputs], "violations": self.violations}


def worst(values: list[float], pick) -> float:
    """``pick`` (min or max) of ``values``, NaN if any of them is not finite: ``min`` over a list with a NaN in it
    depends on the order, and a NaN figure must never look better than a real one."""
    return pick(values) if all(math.isfinite(v) for v in values) else math.nan


def _nonfinite_samples(arrays: list[np.ndarray]) -> dict[str, int]:
    """How many samples hold a NaN, and how many an inf (float outputs only)."""
    floats = [a for a in arrays if np.issubdtype(a.dtype, np.floating)]
    counts = {"nan": sum(bool(np.isnan(a).any()) for a in floats), "inf": sum(bool(np.isinf(a).any()) for a in floats)}
    return {kind: count for kind, count in counts.items() if count}


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


def infer_output_kind(name: str, arrays: list[np.ndarray], outputs: int) -> str:
    """Conservative: ``class`` only for a softmax output, or for (batch, classes) logits that are a model's only
    output or are named like logits/probabilities; never for outputs named like boxes, coordinates or states."""
    if _REGRESSION_NAMES.search(name):
        return "regression"
    if _EMBEDDING_NAMES.search(name):
        return "embedding"
    if is_probability_output(arrays):
        return "class"
    if is_classifier_output(arrays[0]) and (outputs == 1 or _CLASS_NAMES.search(name)):
        return "class"
    return "regression"


def top1_agreement(refs: list[np.ndarray], cands: list[np.ndarray]) -> float:
    """Share of class vectors (per sample and, for sequences, per position) whose arg-max agrees."""
    agree = [np.asarray(r).argmax(-1) == np.asarray(c).argmax(-1) for r, c in zip(refs, cands)]
    return float(np.mean(np.concatenate([a.ravel() for a in agree])))


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


def compare_outputs(reference: list[list[np.ndarray]], candidate: list[list[np.ndarray]],
                    output_names: list[str] | None = None, labels: np.ndarray | None = None,
                    kinds: list[str | None] | None = None) -> AccuracyReport:
    """``reference[s][o]`` / ``candidate[s][o]``: output ``o`` of sample ``s`` (each with batch 1).

    ``kinds[o]`` declares output ``o``'s kind (``class``/``regression``/``embedding``); None infers it.
    """
    if len(reference) != len(candidate) or not reference:
        raise ValueError("reference and candidate must hold the same, non-zero number of samples")
    count = len(reference[0])
    names = output_names or [f"output_{i}" for i in range(count)]
    declared = list(kinds or []) + [None] * count
    outputs = []
    for index in range(count):
        refs = [np.asarray(sample[index]) for sample in reference]
        cands = [np.asarray(sample[index]) for sample in candidate]
        errors = [np.abs(c.astype(np.float64) - r.astype(np.float64)) for r, c in zip(refs, cands)]
        cosines = [cosine(r, c) for r, c in zip(refs, cands)]
        kind = declared[index] or infer_output_kind(names[index], refs, count)
        agreement = top1_agreement(refs, cands) if kind == "class" else None
        outputs.append(OutputAccuracy(names[index], worst(cosines, min), float(np.mean(cosines)),
                                      worst([float(e.max(initial=0.0)) for e in errors], max),
                                      float(np.mean([e.mean() for e in errors])), agreement, kind,
                                      declared[index] is not None, _nonfinite_samples(cands),
                                      _nonfinite_samples(refs)))
    report = AccuracyReport(len(reference), outputs)
    labelled = next((i for i, o in enumerate(outputs) if o.kind == "class" and np.asarray(reference[0][i]).ndim == 2),
                    None)
    if labels is not None and labelled is not None:
        report.reference_label_accuracy = _label_accuracy(reference, labels, labelled)
        report.label_accuracy = _label_accuracy(candidate, labels, labelled)
    return report


def _label_accuracy(results: list[list[np.ndarray]], labels: np.ndarray, output: int = 0) -> float:
    predictions = np.array([int(np.asarray(sample[output]).argmax(-1).ravel()[0]) for sample in results])
    return float(np.mean(predictions == labels[: len(predictions)]))


def apply_budget(report: AccuracyReport, budget) -> AccuracyReport:
    """Fill ``report.violations`` from an ``AccuracyBudget``; each names the figure and the limit. Non-finite
    outputs are violations whatever the budget says, and a figure that is not a number breaks its budget."""
    violations = []
    for output in report.outputs:
        for whose, counts in (("outputs", output.nonfinite), ("the original model's outputs",
                                                                output.reference_nonfinite)):
            for kind, count in counts.items():
                violations.append(f"{whose} contain {'NaN' if kind == 'nan' else 'inf'} in '{output.name}' for "
                                  f"{count} of {report.samples} samples")
    if budget.cosine_min is not None and not _at_least(report.cosine_min, budget.cosine_min):
        violations.append(f"cosine_min {report.cosine_min:.5f} < {budget.cosine_min}{_on_output(report)}")
    agreement = report.top1_agreement
    if budget.top1_agreement_min is not None and agreement is not None and not _at_least(agreement,
                                                                                        budget.top1_agreement_min):
        violations.append(f"top1_agreement {agreement:.4f} < {budget.top1_agreement_min}")
    errors = worst([o.max_abs_error for o in report.outputs if o.kind != "embedding"] or [0.0], max)
    if budget.max_abs_error is not None and not _at_least(-errors, -budget.max_abs_error):
        violations.append(f"max_abs_error {errors:.4g} > {budget.max_abs_error}")
    if budget.label_accuracy_drop_max is not None and report.label_accuracy is not None:
        drop = report.reference_label_accuracy - report.label_accuracy
        if not _at_least(-drop, -budget.label_accuracy_drop_max):
            violations.append(f"label accuracy drop {drop:.4f} > {budget.label_accuracy_drop_max}")
    report.violations = violations
    return report


def _at_least(value: float, limit: float) -> bool:
    """True only for a finite ``value`` >= ``limit``: NaN and inf fail."""
    return math.isfinite(value) and value >= limit


def _on_output(report: AccuracyReport) -> str:
    """`` on output 'name'`` naming the worst output (a NaN one first), for models with several."""
    if len(report.outputs) < 2:
        return ""
    worst_output = min(report.outputs, key=lambda o: o.cosine_min if math.isfinite(o.cosine_min) else -math.inf)
    return f" on output '{worst_output.name}'"
