"""The accuracy gate: every candidate's outputs against the original's, each output judged by what it is.

- ``kinds``: an output's kind (class, regression, embedding, detection, mask, sequence) and the evidence for it;
- ``groups``: channel groups of a stacked output (a YOLO head's boxes next to its scores), scored apart;
- ``detection`` and ``tasks``: detection F1, mask IoU, decoded-sequence agreement against the original;
- ``gate``: ``compare_outputs`` (the figures) and ``apply_budget`` (the violations);
- ``figures`` and ``report``: the shared numbers and the dataclasses that carry them.

docs/accuracy.md describes the rules.
"""

from .figures import cosine, top1_agreement, worst
from .gate import TASK_TEXT, apply_budget, compare_outputs, task_agreement_min
from .kinds import (OutputKind, explain_output_kind, infer_output_kind, is_classifier_output,
                    is_normalised_output, is_probability_output)
from .report import AccuracyReport, GroupAccuracy, OutputAccuracy, TaskAgreement

__all__ = ["TASK_TEXT", "AccuracyReport", "GroupAccuracy", "OutputAccuracy", "OutputKind", "TaskAgreement",
           "apply_budget", "compare_outputs", "cosine", "explain_output_kind", "infer_output_kind",
           "is_classifier_output", "is_normalised_output", "is_probability_output", "task_agreement_min",
           "top1_agreement", "worst"]
