"""edgekit: take a trained model to an edge device and prove it runs well there.

Public API (imported lazily so ``import edgekit`` stays fast and torch-free):
``edgekit.export(...)`` (``exporter/``), ``edgekit.validate(...)``, ``edgekit.select(...)`` and
``edgekit.compare(...)`` (``evaluate/``), ``edgekit.load_target(...)``, and ``edgekit.Manifest`` (an artifact
folder's manifest.json, typed: ``Manifest.load(folder)``).
"""

from __future__ import annotations

from typing import Any

from ._version import __version__

__all__ = ["export", "validate", "select", "compare", "load_target", "Manifest", "__version__"]

def __getattr__(name: str) -> Any:
    if name == "export":
        from .exporter.options import export

        return export
    if name == "validate":
        from .evaluate.validate import validate

        return validate
    if name == "select":
        from .evaluate.select import select

        return select
    if name == "compare":
        from .evaluate.compare import compare

        return compare
    if name == "load_target":
        from .targets import load_target

        return load_target
    if name == "Manifest":
        from .manifest import Manifest

        return Manifest
    raise AttributeError(f"module 'edgekit' has no attribute {name!r}")
