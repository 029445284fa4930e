"""Pipeline steps, one module each. ``STEPS`` maps a name to its step; duplicates are refused."""

from __future__ import annotations

from .base import STEPS, Artifact, Step, StepContext, StepResult, get_step, register
from . import optimize, quantize_dynamic, quantize_static, simplify, fp16  # noqa: F401  (fill the registry)

__all__ = ["STEPS", "Artifact", "Step", "StepContext", "StepResult", "get_step", "register"]
