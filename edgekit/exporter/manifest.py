"""Building the artifact folder's ``Manifest`` (``edgekit.manifest``) from an export's candidates and records."""

from __future__ import annotations

import platform
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from .._version import __version__
from ..agent.conditions import cpu_name
from ..files import to_json
from ..manifest import MANIFEST_SCHEMA, Manifest
from .candidates import Candidate

_VERSIONED = ("onnx", "onnxruntime", "onnxsim", "torch", "numpy", "litert-torch", "ai-edge-litert", "openvino", "nncf")


def build_manifest(*, source, specs, profile, fmt: str, data: dict, common_steps, candidates: list[Candidate],
                   selected: Candidate | None, notes: list[str], timings: dict[str, float], status: str,
                   root: Path, measured_on: dict | None = None, choice: dict | None = None, model_kind=None,
                   int8_recipe: dict | None = None, not_built: list[dict] | None = None,
                   rescue: dict | None = None) -> Manifest:
    """The manifest of an export, checked by the model (its JSON made strict first: numpy numbers become numbers,
    NaN/inf become null). ``data``: the calibration and validation records, relative to ``root``."""
    raw = {
        "schema": MANIFEST_SCHEMA,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "status": status,
        "recommended": selected.artifact.path.relative_to(root).as_posix() if selected else None,
        "format": fmt,
        "source": source.describe(),
        "inputs": [s.to_dict() for s in specs],
        "outputs": output_kinds(candidates),
        "versions": versions(),
        "host": {"arch": platform.machine(), "cpu": cpu_name(), "python": platform.python_version()},
        "target": profile.model_dump(mode="json"),
        "model_kind": model_kind.to_dict() if model_kind is not None else None,
        "int8_recipe": int8_recipe,
        "data": data,
        "steps": [s.to_dict() for s in common_steps],
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
        "latency_measured_on": measured_on,
        "choice": choice,
        "artifacts": [c.to_dict(root) for c in candidates],
        "not_built": not_built or [],
        "rescue": rescue,
        "notes": notes,
    }
    return Manifest.model_validate_json(to_json(raw, indent=None))


def output_kinds(candidates: list[Candidate]) -> list[dict[str, Any]]:
    """Each output's name and kind (class/regression/embedding/detection/mask/sequence), declared or inferred by
    the gate, the evidence for it, the channel groups it is scored by (stacked outputs) and its task figure."""
    report = next((c.accuracy for c in candidates if c.accuracy is not None), None)
    if report is None:
        return []
    return [{"name": o.name, "kind": o.kind, "declared": o.kind_declared, "evidence": o.evidence,
             "groups": [{"label": g.label, "role": g.role, "axis": g.axis, "start": g.start, "stop": g.stop,
                         "scale": g.scale} for g in o.groups],
             "task_metric": o.task.metric if o.task is not None else None} for o in report.outputs]


def versions() -> dict[str, str]:
    found = {"edgekit": __version__}
    for package in _VERSIONED:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return found

