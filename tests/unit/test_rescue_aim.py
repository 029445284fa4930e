"""What a rescue's trials are judged by: the figure the gate failed on, so that a detector whose every cosine meets
the budget but whose detections do not is not rescued by NNCF's cosine-driven search."""

from __future__ import annotations

import math

from edgekit.accuracy import AccuracyReport, GroupAccuracy, OutputAccuracy, TaskAgreement
from edgekit.exporter.rescue import rescue_aim
from edgekit.targets import AccuracyBudget

BUDGET = AccuracyBudget(cosine_min=0.99, top1_agreement_min=0.97)


def detector(class_cosine: float, f1: float) -> AccuracyReport:
    """A YOLO head's report: boxes and class scores stacked in one output, with its detection F1."""
    scores = GroupAccuracy("rows 4–83, class scores", "scores", 1, 4, 84, 1.0, class_cosine, class_cosine, 0.1, 0.01)
    output = OutputAccuracy("output_0", 0.9999, 0.9999, 1.0, 0.1, kind="detection", groups=[scores],
                            task=TaskAgreement("detection_f1", f1))
    return AccuracyReport(16, [output])


def test_a_cosine_under_the_budget_is_the_aim_even_when_detections_fail_too():
    aim = rescue_aim(detector(0.868, 0.90), BUDGET)
    assert aim.is_cosine and aim.label == "worst cosine" and aim.limit == 0.99
    assert aim.read(detector(0.875, 0.80)) == 0.875


def test_detections_failing_at_cosines_within_the_budget_aim_at_the_detection_f1():
    aim = rescue_aim(detector(0.9993, 0.9446), BUDGET)
    assert not aim.is_cosine
    assert aim.label == "output 'output_0' detection F1" and aim.limit == 0.97
    assert aim.read(detector(0.9990, 0.9512)) == 0.9512
    assert aim.read(detector(0.9990, math.nan)) == -1.0  # a figure that is not a number is the worst


def test_a_top1_failure_is_aimed_at_and_a_pass_or_an_unread_figure_falls_back_to_the_cosine():
    classifier = AccuracyReport(16, [OutputAccuracy("logits", 0.995, 0.998, 0.2, 0.01, top1_agreement=0.94)])
    aim = rescue_aim(classifier, BUDGET)
    assert aim.label == "top-1 agreement" and aim.limit == 0.97 and aim.read(classifier) == 0.94
    assert rescue_aim(detector(0.9993, 0.99), BUDGET).is_cosine  # nothing fails: the cosine, as before
    unread = AccuracyBudget(cosine_min=0.99)  # no top-1 limit: F1 and top-1 are reported, not gated
    assert rescue_aim(detector(0.9993, 0.5), unread).is_cosine and rescue_aim(classifier, unread).is_cosine
