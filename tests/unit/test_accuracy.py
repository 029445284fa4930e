import numpy as np
import pytest

from edgekit.accuracy import apply_budget, compare_outputs, cosine
from edgekit.targets import AccuracyBudget


def test_cosine_known_values():
    assert cosine(np.array([1.0, 0.0]), np.array([0.0, 1.0])) == pytest.approx(0.0)
    assert cosine(np.array([1.0, 2.0]), np.array([2.0, 4.0])) == pytest.approx(1.0)
    assert cosine(np.zeros(3), np.zeros(3)) == 1.0
    assert cosine(np.zeros(3), np.ones(3)) == 0.0


def test_figures_and_top1_agreement():
    reference = [[np.array([[1.0, 0.0, 0.0]])], [np.array([[0.0, 1.0, 0.0]])]]
    candidate = [[np.array([[0.9, 0.1, 0.0]])], [np.array([[0.0, 0.4, 0.6]])]]
    report = compare_outputs(reference, candidate, ["logits"], labels=np.array([0, 1]))
    out = report.outputs[0]
    assert out.top1_agreement == 0.5
    assert out.max_abs_error == pytest.approx(0.6)
    assert out.cosine_min == pytest.approx(cosine(reference[1][0], candidate[1][0]))
    assert report.reference_label_accuracy == 1.0 and report.label_accuracy == 0.5


def test_budget_violations_name_the_figure():
    reference = [[np.array([[1.0, 0.0]])]]
    candidate = [[np.array([[0.0, 1.0]])]]
    report = apply_budget(compare_outputs(reference, candidate, labels=np.array([0])),
                          AccuracyBudget(cosine_min=0.99, top1_agreement_min=0.9, max_abs_error=0.5,
                                         label_accuracy_drop_max=0.0))
    assert not report.passed
    text = " | ".join(report.violations)
    for figure in ("cosine_min", "top1_agreement", "max_abs_error", "label accuracy drop"):
        assert figure in text


def test_identical_outputs_pass():
    reference = [[np.array([[0.2, 0.8]]), np.ones((1, 4, 4))]]
    report = apply_budget(compare_outputs(reference, reference), AccuracyBudget(max_abs_error=0.0))
    assert report.passed and report.cosine_min == pytest.approx(1.0)
    assert report.outputs[1].top1_agreement is None  # not classifier-like
