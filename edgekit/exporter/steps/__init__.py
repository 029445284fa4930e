"""Pipeline steps, one module each. ``STEPS`` maps a name to its step; duplicates are refused."""

from __future__ import annotations

from . import (  # noqa: F401  (fill the registry; openvino and nncf load inside their steps, when run)
    fp16,
    fuse_transformer,
    openvino_convert,
    openvino_quantize,
    optimize,
    prepare,
    quantize_dynamic,
    quantize_static,
    simplify,
)
from .base import STEPS, Artifact, Step, StepContext, StepResult, get_step, register

__all__ = ["STEPS", "Artifact", "Step", "StepContext", "StepResult", "get_step", "register"]
