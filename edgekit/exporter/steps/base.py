"""What a step is: it takes an artifact and returns a new artifact plus what it measured."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ...errors import EdgekitError, ExportError


@dataclass(frozen=True)
class Artifact:
    """A model file produced by the pipeline."""

    path: Path
    format: str
    precision: str


@dataclass
class StepResult:
    """The step's output artifact, its parameters, its timing and the figures it measured."""

    step: str
    artifact: Artifact
    params: dict[str, Any]
    seconds: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"step": self.step, "output": self.artifact.path.name, "precision": self.artifact.precision,
                "params": self.params, "seconds": round(self.seconds, 3), "details": self.details}


@dataclass
class StepContext:
    """What every step may read: the target profile, the model's inputs and outputs, and the calibration data."""

    profile: Any  # TargetProfile
    inputs: list  # list[InputSpec]
    calibration: Any = None  # SampleSet
    output_names: list = field(default_factory=list)  # the original's outputs, in order
    output_kinds: list = field(default_factory=list)  # declared kind per output, None where inferred
    model_kind: Any = None  # ModelKind, set by the builders once the graph (or the module) has been read
    # static INT8's calibrated ranges per model and settings (ONNX Runtime's and ai-edge-quantizer's ranges, NNCF's
    # quantized model, whose FakeQuantize ops carry them), shared by rescue trials and by candidates of one IR
    calibration_ranges: dict = field(default_factory=dict)


class Step:
    """Subclasses set ``name`` and implement ``apply``; ``run`` adds timing."""

    name: ClassVar[str]

    def apply(self, artifact: Artifact, out_path: Path, context: StepContext) -> StepResult:  # pragma: no cover
        raise NotImplementedError

    def run(self, artifact: Artifact, out_path: Path, context: StepContext) -> StepResult:
        start = time.perf_counter()
        result = self.apply(artifact, out_path, context)
        result.seconds = time.perf_counter() - start
        return result


class OutOfTime(Exception):
    """A bounded search (a rescue) ran past its deadline, or will; raised between trials, never inside a runtime
    call. Its message says which."""


def require_static_shapes(context: StepContext, runtime: str, flag: str) -> None:
    """An ``ExportError`` unless every input dim is a number: ``runtime``'s export needs static shapes."""
    if any(isinstance(d, str) for spec in context.inputs for d in spec.shape):
        raise ExportError(f"{runtime} export needs static shapes; the inputs are "
                          f"{', '.join(str(s) for s in context.inputs)}", hint=f"drop --dynamic-batch for {flag}")


def check_deadline(deadline: float | None) -> None:
    """Raise ``OutOfTime`` once ``time.monotonic()`` has passed ``deadline`` (None: unbounded)."""
    if deadline is not None and time.monotonic() >= deadline:
        raise OutOfTime("the rescue time budget (--rescue-budget-s) ran out")


STEPS: dict[str, type[Step]] = {}


def register(cls: type[Step]) -> type[Step]:
    if cls.name in STEPS:
        raise ValueError(f"step '{cls.name}' registered twice ({STEPS[cls.name].__module__}, {cls.__module__})")
    STEPS[cls.name] = cls
    return cls


def get_step(name: str) -> Step:
    try:
        return STEPS[name]()
    except KeyError:
        raise EdgekitError(f"unknown step '{name}'; valid steps: {', '.join(sorted(STEPS))}") from None
