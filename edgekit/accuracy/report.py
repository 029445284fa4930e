"""What the gate measured: per output (with its kind and the evidence for it), per channel group of a stacked
output, and the task-level agreement of detections, masks and sequences."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from .figures import worst


@dataclass
class GroupAccuracy:
    """Figures for one channel group of a stacked output (e.g. a YOLO head's box rows or its class-score rows),
    rows/columns ``start``..``stop - 1`` of ``axis``."""

    label: str  # "rows 4–83, class scores"
    role: str  # boxes | scores | values
    axis: int
    start: int
    stop: int
    scale: float  # max |value| of the original's outputs in this group
    cosine_min: float
    cosine_mean: float
    max_abs_error: float
    mean_abs_error: float


@dataclass
class TaskAgreement:
    """How far the candidate's decisions agree with the original's for a task-level kind: ``value`` is the figure
    the budget reads (detection F1, pooled mask IoU, symbol agreement of decoded sequences); ``details`` the rest."""

    metric: str  # detection_f1 | mask_iou | symbol_agreement
    value: float
    details: dict = field(default_factory=dict)


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
    evidence: str = ""  # why the output has its kind
    groups: list[GroupAccuracy] = field(default_factory=list)  # channel groups of a stacked output
    task: TaskAgreement | None = None  # detection, mask and sequence outputs


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
    def group_cosine_min(self) -> float | None:
        """The worst cosine of any channel group (None: no output is stacked)."""
        values = [g.cosine_min for o in self.outputs for g in o.groups]
        return worst(values, min) if values else None

    @property
    def max_abs_error(self) -> float:
        return worst([o.max_abs_error for o in self.outputs], max)

    @property
    def top1_agreement(self) -> float | None:
        values = [o.top1_agreement for o in self.outputs if o.top1_agreement is not None]
        return worst(values, min) if values else None

    def to_dict(self) -> dict:
        return {"samples": self.samples, "passed": self.passed, "cosine_min": self.cosine_min,
                "group_cosine_min": self.group_cosine_min,
                "max_abs_error": self.max_abs_error, "top1_agreement": self.top1_agreement,
                "label_accuracy": self.label_accuracy,
                "reference_label_accuracy": self.reference_label_accuracy,
                "outputs": [asdict(o) for o in self.outputs], "violations": self.violations}
