"""Pipeline steps, one module each. ``STEPS`` maps a name to its step; duplicates are refused."""

from __future__ import annotations

from . import (  # noqa: F401  (fill the registry)
    fp16,
    fuse_transformer,
    optimize,
    prepare,
    quantize_dynamic,
    quantize_static,
    simplify,
)
from .base import STEPS, Artifact, Step, StepContext, StepResult, get_step, register

__all__ = ["STEPS", "Artifact", "Step", "StepContext", "StepResult", "get_step", "register"]
