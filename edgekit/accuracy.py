"""The accuracy gate: compare a candidate's outputs with the original's on validation samples."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np


@dataclass
class OutputAccuracy:
    """Figures for one output over all samples."""

    name: str
    cosine_min: float
    cosine_mean: float
    max_abs_error: float
    mean_abs_error: float
    top1_agreement: float | None = None


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
        return min(o.cosine_min for o in self.outputs)

    @property
    def top1_agreement(self) -> float | None:
        values = [o.top1_agreement for o in self.outputs if o.top1_agreement is not None]
        return min(values) if values else None

    def to_dict(self) -> dict:
        return {"samples": self.samples, "passed": self.passed, "cosine_min": self.cosine_min,
                "top1_agreement": self.top1_agreement, "label_accuracy": self.label_accuracy,
                "reference_label_accuracy": self.reference_label_accuracy,
                "outputs": [asdict(o) for o in self.outputs], "violations": self.violations}


def is_classifier_output(array: np.ndarray) -> bool:
    """A (batch, classes) float output with more than one class."""
    return array.ndim == 2 and array.shape[-1] > 1 and np.issubdtype(array.dtype, np.floating)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a64, b64 = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    na, nb = np.linalg.norm(a64), np.linalg.norm(b64)
    if na == 0.0 and nb == 0.0:
        return 1.0
    if na == 0.0 or nb == 0.0:
        return 0.0
    return float(np.dot(a64, b64) / (na * nb))


def compare_outputs(reference: list[list[np.ndarray]], candidate: list[list[np.ndarray]],
                    output_names: list[str] | None = None, labels: np.ndarray | None = None) -> AccuracyReport:
    """``reference[s][o]`` / ``candidate[s][o]``: output ``o`` of sample ``s`` (each with batch 1)."""
    if len(reference) != len(candidate) or not reference:
        raise ValueError("reference and candidate must hold the same, non-zero number of samples")
    count = len(reference[0])
    names = output_names or [f"output_{i}" for i in range(count)]
    outputs = []
    for index in range(count):
        refs = [np.asarray(sample[index]) for sample in reference]
        cands = [np.asarray(sample[index]) for sample in candidate]
        errors = [np.abs(c.astype(np.float64) - r.astype(np.float64)) for r, c in zip(refs, cands)]
        cosines = [cosine(r, c) for r, c in zip(refs, cands)]
        agreement = None
        if is_classifier_output(refs[0]):
            agreement = float(np.mean([np.array_equal(r.argmax(-1), c.argmax(-1)) for r, c in zip(refs, cands)]))
        outputs.append(OutputAccuracy(names[index], float(min(cosines)), float(np.mean(cosines)),
                                      float(max(e.max(initial=0.0) for e in errors)),
                                      float(np.mean([e.mean() for e in errors])), agreement))
    report = AccuracyReport(len(reference), outputs)
    if labels is not None and is_classifier_output(np.asarray(reference[0][0])):
        report.reference_label_accuracy = _label_accuracy(reference, labels)
        report.label_accuracy = _label_accuracy(candidate, labels)
    return report


def _label_accuracy(results: list[list[np.ndarray]], labels: np.ndarray) -> float:
    predictions = np.array([int(np.asarray(sample[0]).argmax(-1).ravel()[0]) for sample in results])
    return float(np.mean(predictions == labels[: len(predictions)]))


def apply_budget(report: AccuracyReport, budget) -> AccuracyReport:
    """Fill ``report.violations`` from an ``AccuracyBudget``; each names the figure and the limit."""
    violations = []
    if budget.cosine_min is not None and report.cosine_min < budget.cosine_min:
        violations.append(f"cosine_min {report.cosine_min:.5f} < {budget.cosine_min}")
    agreement = report.top1_agreement
    if budget.top1_agreement_min is not None and agreement is not None and agreement < budget.top1_agreement_min:
        violations.append(f"top1_agreement {agreement:.4f} < {budget.top1_agreement_min}")
    worst = max(o.max_abs_error for o in report.outputs)
    if budget.max_abs_error is not None and worst > budget.max_abs_error:
        violations.append(f"max_abs_error {worst:.4g} > {budget.max_abs_error}")
    if (budget.label_accuracy_drop_max is not None and report.label_accuracy is not None
            and report.reference_label_accuracy - report.label_accuracy > budget.label_accuracy_drop_max):
        drop = report.reference_label_accuracy - report.label_accuracy
        violations.append(f"label accuracy drop {drop:.4f} > {budget.label_accuracy_drop_max}")
    report.violations = violations
    return report
