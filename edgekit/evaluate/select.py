"""The measured choice: which artifact the folder recommends, decided from latency measured on a real device.

An export on a machine that is not the target (another architecture, an emulator, or no benchmark) leaves a
provisional recommendation, chosen by a documented rule. ``edgekit validate --all`` measures every passing
candidate on devices; the first device that matches the target's architecture and is not emulated decides: the
fastest candidate (p50) that passed there (outputs against this host, latency budget) becomes the recommendation.
The manifest is rewritten atomically, saying where and how the choice was measured. Emulated devices and devices
of another architecture never decide: their latency is not the target's.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from ..errors import InputError
from ..files import read_json
from ..manifest import MANIFEST_FILE, Choice, Manifest, MeasuredOn, PreviousChoice
from ..targets import normalized_arch

VALIDATION_SCHEMA_PREFIX = r"^edgekit\.validation/"
MEASURED_RULE = "the fastest candidate by p50 among those that passed on the device (outputs and latency budget)"


class _Check(BaseModel):
    file: str
    passed: bool
    benchmark: dict[str, Any] | None = None


class _Device(BaseModel):
    agent: str
    device: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    artifacts: list[_Check] = []


class _ValidatedArtifact(BaseModel):
    file: str
    sha256: str | None = None


class _Validation(BaseModel):
    """The parts of ``validation.json`` the choice reads; the rest is passed through unchecked."""

    schema_: str = Field(alias="schema", pattern=VALIDATION_SCHEMA_PREFIX)
    devices: list[_Device]
    artifacts: list[_ValidatedArtifact] = []


@dataclass
class Selection:
    """What ``select`` did: ``decided_by`` is the device's agent URL, or None with the reasons in ``notes``."""

    artifact_dir: Path
    recommended: str | None
    previous: str | None
    decided_by: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return self.decided_by is not None and self.recommended != self.previous


def deciding_device(validation: dict, target_arch: str) -> tuple[dict | None, list[str]]:
    """The first device of a validation report whose latency may choose, and why each other one may not."""
    notes = []
    for device in validation["devices"]:
        info = device.get("device") or {}
        arch = normalized_arch(info.get("arch"))
        if device.get("error"):
            notes.append(f"{device['agent']} did not run ({device['error'].get('message')})")
        elif info.get("emulated"):
            notes.append(f"{device['agent']} is emulated ({_evidence(info)}): emulated latency never decides")
        elif target_arch not in ("any", arch):
            notes.append(f"{device['agent']} is {arch}, the target is {target_arch}: its latency does not decide")
        else:
            return device, notes
    return None, notes


def apply_validation(folder: Path, manifest: Manifest, validation: dict) -> Selection:
    """Record the measured choice of a ``validate --all`` report in ``folder/manifest.json`` (atomically); a
    report without a deciding device, or with no candidate that passed there, leaves the manifest as it is."""
    previous = manifest.recommended
    selection = Selection(folder, previous, previous)
    device, selection.notes = deciding_device(validation, manifest.target.arch)
    if device is None:
        state = "provisional" if manifest.choice is not None and manifest.choice.provisional else "as exported"
        selection.notes.append(f"no device here decides the choice: the recommendation stays {state}")
        return selection
    measured = {}
    for check in device["artifacts"]:
        entry = manifest.entry(check["file"])
        latency = (check.get("benchmark") or {}).get("latency")
        if entry is None or entry.sha256 != _validated_sha(validation, check["file"]):
            raise InputError(f"validation.json does not match manifest.json for {check['file']}",
                             hint="run `edgekit validate --all` again on this folder")
        if check["passed"] and isinstance(latency, dict) and isinstance(latency.get("p50_ms"), (int, float)):
            measured[check["file"]] = latency["p50_ms"]
    if not measured:
        selection.notes.append(f"no candidate passed on {device['agent']}: the recommendation is unchanged")
        return selection
    best = min(measured, key=measured.get)
    for entry in manifest.built:
        if entry.status in ("passed", "selected"):
            entry.status = "selected" if entry.file == best else "passed"
    info, old = device["device"], manifest.choice
    manifest.recommended = best
    manifest.choice = Choice(
        provisional=False, rule=MEASURED_RULE, why=None, made_by="edgekit validate --all",
        at=validation.get("created") or datetime.now(timezone.utc).isoformat(timespec="seconds"),
        measured_on=MeasuredOn(where="device", agent=device["agent"], arch=info.get("arch"), cpu=info.get("cpu"),
                               cpu_features=info.get("cpu_features"), emulated=False,
                               conditions=info.get("conditions")),
        p50_ms=measured, previous=PreviousChoice(recommended=previous, rule=old.rule if old else None,
                                                 provisional=old.provisional if old else None))
    manifest.notes.append(f"measured choice {best} on {device['agent']} ({info.get('arch')}, {info.get('cpu')}): "
                          f"p50 {measured[best]:.4g} ms")
    manifest.write(folder, mode=stat.S_IMODE((folder / MANIFEST_FILE).stat().st_mode))
    selection.recommended, selection.decided_by = best, device["agent"]
    return selection


def select(artifact_dir: str | Path) -> Selection:
    """Make the measured choice again from the folder's ``validation.json`` (written by ``edgekit validate
    --all``) and record it in its manifest."""
    folder = Path(artifact_dir)
    manifest = Manifest.load(folder)
    path = folder / "validation.json"
    try:
        validation = read_json(path)
    except OSError as exc:
        raise InputError(f"no readable validation.json in {folder}",
                         hint="run `edgekit validate --all` against the device's agent first") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"{path} is not valid JSON: {exc}", hint="run `edgekit validate --all` again") from exc
    try:
        _Validation.model_validate(validation)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'the file'}: {e['msg']}"
                             for e in exc.errors()[:3])
        raise InputError(f"{path} is not an edgekit validation report: {problems}",
                         hint="run `edgekit validate --all` again on this folder") from None
    return apply_validation(folder, manifest, validation)


def _validated_sha(validation: dict, file: str) -> str | None:
    return next((a["sha256"] for a in validation.get("artifacts", []) if a["file"] == file), None)


def _evidence(info: dict) -> str:
    emulation = info.get("emulation") or {}
    return "; ".join(emulation.get("evidence") or []) or "the agent says so"
