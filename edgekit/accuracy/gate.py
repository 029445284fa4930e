"""The accuracy gate: compare a candidate's outputs with the original's on validation samples.

Each output is judged by its kind (``kinds.py``: declared by the user, or inferred from the original's outputs
with the evidence recorded): cosine and absolute error for all; top-1 agreement and label accuracy for ``class``;
no absolute error for ``embedding``; per channel group for stacked outputs (``groups.py``); detection F1, mask IoU
or decoded-sequence agreement for ``detection``, ``mask`` and ``sequence`` (``detection.py``, ``tasks.py``).

It fails closed: a non-finite output (NaN, inf) is a violation of its own, and a figure that is not a number
breaks every budget that reads it (``nan < limit`` is false, so each check asks "is it finite and within").
"""

from __future__ import annotations

import math

import numpy as np

from .detection import detection_agreement
from .figures import closeness, nonfinite_samples, top1_agreement, worst
from .groups import group_figures
from .kinds import OutputKind, declared_kind, explain_output_kind
from .report import AccuracyReport, OutputAccuracy, TaskAgreement
from .tasks import mask_agreement, sequence_agreement

TASK_TEXT = {"detection_f1": "detection F1", "mask_iou": "mask IoU", "symbol_agreement": "decoded symbol agreement"}


def compare_outputs(reference: list[list[np.ndarray]], candidate: list[list[np.ndarray]],
                    output_names: list[str] | None = None, labels: np.ndarray | None = None,
                    kinds: list[str | None] | None = None) -> AccuracyReport:
    """``reference[s][o]`` / ``candidate[s][o]``: output ``o`` of sample ``s`` (each with batch 1).

    ``kinds[o]`` declares output ``o``'s kind (one of ``edgekit.specs.OUTPUT_KINDS``); None infers it.
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
        judged = declared_kind(declared[index], refs) if declared[index] else explain_output_kind(
            names[index], refs, labels)
        outputs.append(_judge(names[index], judged, refs, cands))
    report = AccuracyReport(len(reference), outputs)
    labelled = next((i for i, o in enumerate(outputs) if o.kind == "class" and np.asarray(reference[0][i]).ndim == 2),
                    None)
    if labels is not None and labelled is not None:
        report.reference_label_accuracy = _label_accuracy(reference, labels, labelled)
        report.label_accuracy = _label_accuracy(candidate, labels, labelled)
    return report


def _judge(name: str, judged: OutputKind, refs: list[np.ndarray], cands: list[np.ndarray]) -> OutputAccuracy:
    """The figures of one output: the shared ones, then what its kind adds."""
    output = OutputAccuracy(name, *closeness(refs, cands), kind=judged.kind, kind_declared=judged.declared,
                            nonfinite=nonfinite_samples(cands), reference_nonfinite=nonfinite_samples(refs),
                            evidence=judged.evidence)
    if judged.kind == "class":
        output.top1_agreement = top1_agreement(refs, cands)
    if judged.layout is not None and judged.kind in ("regression", "detection"):
        output.groups = group_figures(judged.layout, refs, cands)
    output.task = _task(judged, refs, cands)
    return output


def _task(judged: OutputKind, refs: list[np.ndarray], cands: list[np.ndarray]) -> TaskAgreement | None:
    if judged.kind == "detection":
        return detection_agreement(refs, cands, judged.layout.axis)
    if judged.kind == "mask":
        return mask_agreement(refs, cands)
    if judged.kind == "sequence":
        return sequence_agreement(refs, cands, judged.blank)
    return None


def _label_accuracy(results: list[list[np.ndarray]], labels: np.ndarray, output: int = 0) -> float:
    predictions = np.array([int(np.asarray(sample[output]).argmax(-1).ravel()[0]) for sample in results])
    return float(np.mean(predictions == labels[: len(predictions)]))


def task_agreement_min(budget) -> float | None:
    """The limit for task-level agreement (detection F1, mask IoU, decoded symbols): the budget's own
    ``task_agreement_min`` where it has one, else its ``top1_agreement_min`` (both measure how often the
    candidate decides as the original does); None: reported, not gated."""
    own = getattr(budget, "task_agreement_min", None)
    return own if own is not None else budget.top1_agreement_min


def apply_budget(report: AccuracyReport, budget) -> AccuracyReport:
    """Fill ``report.violations`` from an ``AccuracyBudget``; each names the figure, the limit and, for a
    channel group or a task figure, the output and the group. Non-finite outputs are violations whatever the
    budget says, and a figure that is not a number breaks its budget."""
    violations = []
    for output in report.outputs:
        for whose, counts in (("outputs", output.nonfinite), ("the original model's outputs",
                                                                output.reference_nonfinite)):
            for kind, count in counts.items():
                violations.append(f"{whose} contain {'NaN' if kind == 'nan' else 'inf'} in '{output.name}' for "
                                  f"{count} of {report.samples} samples")
    if budget.cosine_min is not None and not _at_least(report.cosine_min, budget.cosine_min):
        violations.append(f"cosine_min {report.cosine_min:.5f} < {budget.cosine_min}{_on_output(report)}")
    for output in report.outputs:
        for group in output.groups:
            if budget.cosine_min is not None and not _at_least(group.cosine_min, budget.cosine_min):
                violations.append(f"output '{output.name}' {group.label}: cosine_min {group.cosine_min:.5f} < "
                                  f"{budget.cosine_min} (whole output {output.cosine_min:.5f})")
    agreement = report.top1_agreement
    if budget.top1_agreement_min is not None and agreement is not None and not _at_least(agreement,
                                                                                        budget.top1_agreement_min):
        violations.append(f"top1_agreement {agreement:.4f} < {budget.top1_agreement_min}")
    limit = task_agreement_min(budget)
    for output in report.outputs:
        if output.task is not None and limit is not None and not _at_least(output.task.value, limit):
            violations.append(f"output '{output.name}': {TASK_TEXT[output.task.metric]} {output.task.value:.4f} "
                              f"< {limit}{_task_details(output.task)}")
    errors = max_abs_error_judged(report)
    if budget.max_abs_error is not None and not _at_least(-errors, -budget.max_abs_error):
        violations.append(f"max_abs_error {errors:.4g} > {budget.max_abs_error}")
    if budget.label_accuracy_drop_max is not None and report.label_accuracy is not None:
        drop = report.reference_label_accuracy - report.label_accuracy
        if not _at_least(-drop, -budget.label_accuracy_drop_max):
            violations.append(f"label accuracy drop {drop:.4f} > {budget.label_accuracy_drop_max}")
    report.violations = violations
    return report


def max_abs_error_judged(report: AccuracyReport) -> float:
    """The worst absolute error over the outputs it applies to (not embeddings: their scale is arbitrary)."""
    return worst([o.max_abs_error for o in report.outputs if o.kind != "embedding"] or [0.0], max)


def _task_details(task: TaskAgreement) -> str:
    details = task.details
    if task.metric == "detection_f1":
        return (f" (precision {details['precision']:.3f}, recall {details['recall']:.3f}; "
                f"{details['matched']} of {details['reference_detections']} detections matched)")
    if task.metric == "mask_iou":
        return f" (worst sample {details['iou_min']:.3f})"
    return f" ({details['sequence_agreement']:.0%} of sequences decoded alike)"


def _at_least(value: float, limit: float) -> bool:
    """True only for a finite ``value`` >= ``limit``: NaN and inf fail."""
    return math.isfinite(value) and value >= limit


def _on_output(report: AccuracyReport) -> str:
    """`` on output 'name'`` naming the worst output (a NaN one first), for models with several."""
    if len(report.outputs) < 2:
        return ""
    worst_output = min(report.outputs, key=lambda o: o.cosine_min if math.isfinite(o.cosine_min) else -math.inf)
    return f" on output '{worst_output.name}'"
