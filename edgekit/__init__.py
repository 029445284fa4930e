"""edgekit: take a trained model to an edge device and prove it runs well there.

Public API (imported lazily so ``import edgekit`` stays fast and torch-free):
``edgekit.export(...)``, ``edgekit.load_target(...)``.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["export", "load_target", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "export":
        from .pipeline import export

        return export
    if name == "load_target":
        from .targets import load_target

        return load_target
    raise AttributeError(f"module 'edgekit' has no attribute {name!r}")
