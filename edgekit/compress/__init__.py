"""Compression beyond post-training quantization: pruning, distillation and quantization-aware training.

``edgekit.compress.prune(...)``, ``edgekit.compress.distill(...)`` and ``edgekit.compress.qat(...)`` mirror
``edgekit compress prune|distill|qat``; each writes a folder (``model.safetensors`` + ``compressed.json``) that
``edgekit export`` takes as MODEL. All run in one process, or data parallel / sharded under ``torchrun``
(``distributed.py``). Imported lazily: ``import edgekit.compress`` loads neither torch nor Torch-Pruning.
"""

from __future__ import annotations

from typing import Any

__all__ = ["distill", "prune", "qat"]


def __getattr__(name: str) -> Any:
    if name == "prune":
        from .pruning import prune

        return prune
    if name == "distill":
        from .distillation import distill

        return distill
    if name == "qat":
        from .quantization import qat

        return qat
    raise AttributeError(f"module 'edgekit.compress' has no attribute {name!r}")
