"""Pipeline steps, one module each. ``STEPS`` maps a name to its step; duplicates are refused."""

from __future__ import annotations

from . import fp16, optimize, prepare, quantize_dynamic, quantize_static, simplify  # noqa: F401  (fill the registry)
from . import openvino_convert, openvino_quantize  # noqa: F401  (openvino and nncf load inside, when run)
from .base import STEPS, Artifact, Step, StepContext, StepResult, get_step, register

__all__ = ["STEPS", "Artifact", "Step", "StepContext", "StepResult", "get_step", "register"]
