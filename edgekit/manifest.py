"""The artifact folder's ``manifest.json`` as one typed model: what was built from what, how, what it measured and
what the folder recommends. The exporter writes it; validate, select, compare and the cloud baseline read it.
Shared by the workstation and the device side: pydantic only, no torch."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import InputError
from .files import parse_json, sha256_file, write_text_atomic
from .targets import TargetProfile

MANIFEST_SCHEMA = "edgekit.manifest/3"
MANIFEST_FILE = "manifest.json"
REEXPORT = "re-run `edgekit export` to write the folder again (a hand-edited manifest.json is refused)"


class _Record(BaseModel):
    """A part of the manifest: every key known, none extra (a typo or a hand-added key is an error)."""

    model_config = ConfigDict(extra="forbid")


class Source(_Record):
    """The model exported: its kind, the reference given, and (for a file) its path on the workstation and digest."""

    kind: Literal["pytorch", "onnx", "tflite"]
    reference: str
    path: str | None = None
    sha256: str | None = None


class InputRecord(_Record):
    """One input of the model: ``NAME:1x3x224x224[:dtype]`` as fields (symbolic dims are strings)."""

    name: str
    shape: list[int | str]
    dtype: str


class OutputGroup(_Record):
    """One channel group of a stacked output (a YOLO head's box rows, its class-score rows)."""

    label: str
    role: str
    axis: int
    start: int
    stop: int
    scale: float | None


class OutputRecord(_Record):
    """One output: its kind (declared or inferred by the gate), the evidence, its groups and task figure."""

    name: str
    kind: str
    declared: bool
    evidence: str
    groups: list[OutputGroup] = []
    task_metric: str | None = None


class Host(_Record):
    arch: str
    cpu: str | None
    python: str


class ModelKind(_Record):
    kind: str
    evidence: dict[str, int]
    reason: str
    read_from: str


class ShippedSamples(_Record):
    """The validation samples copied into the folder (``samples/validation.npz``), bounded in count and bytes, so
    the folder validates on its own samples anywhere. ``file`` is None (with ``reason``) when none fit."""

    file: str | None
    samples: int
    of: int
    bytes: int
    sha256: str | None
    reason: str | None = None


class DataRecord(_Record):
    """Calibration or validation data. ``path`` (and the paths in ``reload``) are relative to the artifact folder;
    ``sha256`` is the data file's digest (None for a folder or synthetic data)."""

    origin: str
    samples: int
    synthetic: bool
    labels: bool
    path: str | None = None
    sha256: str | None = None
    reload: dict[str, Any] | None = None  # load_data() arguments for sentences and images; paths relative
    shipped: ShippedSamples | None = None  # validation only

    def located(self, folder: Path) -> Path | None:
        """The original data as found from ``folder`` now, if it is there (with its tokenizer) and unchanged."""
        if self.path is None:
            return None
        path = Path(folder) / self.path
        tokenizer = (self.reload or {}).get("tokenizer")
        if not path.exists() or (tokenizer is not None and not (Path(folder) / tokenizer).exists()):
            return None
        if self.sha256 is not None and (not path.is_file() or sha256_file(path) != self.sha256):
            return None
        return path

    def reload_from(self, folder: Path) -> dict[str, Any]:
        """The ``load_data`` arguments besides the path (tokenizer, preprocessing), paths made whole from ``folder``."""
        how = {key: value for key, value in (self.reload or {}).items() if key != "path"}
        if "tokenizer" in how:
            how["tokenizer"] = str(Path(folder) / how["tokenizer"])
        return how


class Data(_Record):
    calibration: DataRecord
    validation: DataRecord
    notes: list[str] = []


class StepRecord(_Record):
    """One step that made a file: its name, output, parameters, time and what it measured."""

    step: str
    output: str
    precision: str
    params: dict[str, Any]
    seconds: float
    details: dict[str, Any]


class StatusChange(_Record):
    """One change of a candidate's status: to what, by which part of the export, and why."""

    status: Literal["passed", "selected", "rejected"]
    by: str
    why: str | None = None


class NotBuilt(_Record):
    """A candidate the profile asks for that was not built, and why (no route from this source, a precision the
    host cannot gate, a precision the route has no step for)."""

    candidate: str
    reason: str


class ArtifactEntry(_Record):
    """One candidate the export tried: its file(s) (None when it could not be built), status, figures, and the
    options its runner needs. ``sha256`` is the digest the agent stores it under (an IR: of its bundle)."""

    name: str
    file: str | None
    files: list[str]
    format: str
    precision: str
    size_bytes: int | None
    sha256: str | None
    status: Literal["passed", "selected", "rejected"]
    passed: bool
    rejected_reason: str | None
    failure: Literal["conversion", "runtime", "accuracy", "speed", "device"] | None
    runner_options: dict[str, Any]
    steps: list[StepRecord]
    notes: list[str]
    accuracy: dict[str, Any] | None
    latency: dict[str, Any] | None
    execution: dict[str, Any] | None
    history: list[StatusChange] = []


class MeasuredOn(_Record):
    """Where latency was measured: this host, or a device through its agent; emulated or not, with the evidence."""

    where: Literal["host", "device"]
    agent: str | None = None
    arch: str
    cpu: str | None
    cpu_features: list[str] | None = None
    emulated: bool
    emulation: dict[str, Any] | None = None
    conditions: dict[str, Any] | None = None


class PreviousChoice(_Record):
    recommended: str | None
    rule: str | None
    provisional: bool | None


class Choice(_Record):
    """How the recommendation was made: ``provisional`` when latency here may not decide, by ``rule``, and ``why``;
    a measured choice (``edgekit validate --all``) adds who made it, where, the p50 per file and the previous one."""

    provisional: bool
    rule: str
    why: str | None
    made_by: str | None = None
    at: str | None = None
    measured_on: MeasuredOn | None = None
    p50_ms: dict[str, float] | None = None
    previous: PreviousChoice | None = None


class Manifest(_Record):
    """``manifest.json``; ``schema`` names its version (``MANIFEST_SCHEMA``)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, serialize_by_alias=True)

    schema_: Literal["edgekit.manifest/3"] = Field(MANIFEST_SCHEMA, alias="schema")
    created: str
    status: Literal["passed", "failed"]
    recommended: str | None
    format: str
    source: Source
    inputs: list[InputRecord]
    outputs: list[OutputRecord]
    versions: dict[str, str]
    host: Host
    target: TargetProfile
    model_kind: ModelKind | None
    int8_recipe: dict[str, Any] | None
    data: Data
    steps: list[StepRecord]
    timings_s: dict[str, float]
    latency_measured_on: MeasuredOn | None
    choice: Choice | None
    artifacts: list[ArtifactEntry]
    not_built: list[NotBuilt] = []
    rescue: dict[str, Any] | None = None  # the speed-first schedule: budget, time spent, what was tried, skipped
    notes: list[str]

    def entry(self, file: str) -> ArtifactEntry | None:
        """The artifact entry of ``file`` (a path relative to the folder), if the manifest lists it."""
        return next((a for a in self.artifacts if a.file == file), None)

    @property
    def built(self) -> list[ArtifactEntry]:
        """The entries that have a file (every candidate that could be built)."""
        return [a for a in self.artifacts if a.file is not None]

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape, as written."""
        return self.model_dump(mode="json")

    def write(self, folder: Path, mode: int | None = None) -> Path:
        """Write ``folder/manifest.json`` atomically (readers see the old file or the new one)."""
        return write_text_atomic(Path(folder) / MANIFEST_FILE, self.model_dump_json(indent=2) + "\n", mode)

    @classmethod
    def parse(cls, text: str, where: str = MANIFEST_FILE) -> Manifest:
        """A manifest from its JSON text; an ``InputError`` naming the first problems otherwise."""
        try:
            raw = parse_json(text)
        except ValueError as exc:
            raise InputError(f"{where} is not valid JSON: {exc}", hint=REEXPORT) from None
        schema = raw.get("schema") if isinstance(raw, dict) else None
        if isinstance(schema, str) and schema.startswith("edgekit.manifest/") and schema != MANIFEST_SCHEMA:
            raise InputError(f"{where} is {schema}, which this edgekit does not read: it reads {MANIFEST_SCHEMA} "
                             "(data paths relative to the folder, validation samples shipped in it)",
                             hint="re-run `edgekit export` with this edgekit to write the folder again")
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'the file'}: {e['msg']}"
                                 for e in exc.errors()[:3])
            raise InputError(f"{where} is not an edgekit manifest: {problems}", hint=REEXPORT) from None

    @classmethod
    def load(cls, folder: str | Path) -> Manifest:
        """``folder/manifest.json``, read and checked; an ``InputError`` with the fix otherwise."""
        folder = Path(folder)
        hint = "pass an artifact folder written by `edgekit export`"
        if not folder.exists():
            raise InputError(f"artifact folder not found: {folder}", hint=hint)
        if not folder.is_dir():
            raise InputError(f"{folder} is a file, not an artifact folder", hint=hint)
        path = folder / MANIFEST_FILE
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise InputError(f"no {MANIFEST_FILE} in {folder}", hint=hint) from None
        except UnicodeDecodeError as exc:
            raise InputError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})", hint=REEXPORT) from None
        except OSError as exc:
            raise InputError(f"cannot read {path}: {exc.strerror or exc}", hint="check the file's permissions") from None
        return cls.parse(text, str(path))


def json_schema() -> str:
    """The manifest's JSON Schema as written to ``docs/manifest.schema.json`` (by ``scripts/manifest-schema.sh``)."""
    return json.dumps(Manifest.model_json_schema(by_alias=True), indent=2, ensure_ascii=False) + "\n"


def relative_path(path: str | Path, folder: Path) -> str:
    """``path`` as seen from ``folder`` (POSIX separators), so the record holds no workstation's absolute path."""
    return Path(os.path.relpath(Path(path).resolve(), Path(folder).resolve())).as_posix()
