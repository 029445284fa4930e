"""``edgekit.toml``: a project file naming the model, inputs, data, target and output folder."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, StrictBool, ValidationError

from ..errors import InputError
from ..files import read_toml, regular_file

PROJECT_FILE = "edgekit.toml"


class ProjectConfig(BaseModel):
    """Every field is optional; command-line options override it. Paths are relative to the file."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = None
    target: str | None = None
    inputs: list[str] | None = None
    outputs: list[str] | None = None  # output kinds: ["scores:class", "boxes:regression"]
    dynamic_batch: StrictBool | None = None  # true/false, never "yes"
    calib: str | None = None
    val: str | None = None
    tokenizer: str | None = None  # the model's tokenizer.json (or its folder), for a .txt of sentences
    preprocess: str | dict | None = None  # for a folder of images: "resize=256,crop=224,..." or a table
    out: str | None = None
    format: str | None = None


def load_project(folder: Path | None = None) -> tuple[ProjectConfig, Path] | None:
    """Read ``edgekit.toml`` in ``folder`` (default: cwd), with paths made absolute; None if absent."""
    path = (folder or Path.cwd()) / PROJECT_FILE
    if not os.path.lexists(path):
        return None
    regular_file(path, "project file")
    try:
        config = ProjectConfig.model_validate(read_toml(path, "edgekit.toml"))
    except ValidationError as exc:
        problems = "; ".join(f"field '{'.'.join(map(str, e['loc']))}': {e['msg']}" for e in exc.errors())
        raise InputError(f"{path}: {problems}", hint="see docs/export.md, section edgekit.toml") from exc
    base = path.parent
    updates = {}
    for key in ("calib", "val", "out", "tokenizer"):
        value = getattr(config, key)
        if value is not None:
            updates[key] = str((base / value).resolve())
    if config.model:
        updates["model"] = _resolve_model(config.model, base)
    if isinstance(config.preprocess, str) and config.preprocess.endswith((".json", ".toml")):
        updates["preprocess"] = str((base / config.preprocess).resolve())
    if config.target and config.target.endswith(".toml"):
        updates["target"] = str((base / config.target).resolve())
    return config.model_copy(update=updates), path


def _resolve_model(model: str, base: Path) -> str:
    """Make a file reference absolute; ``package.module:factory`` stays as written."""
    if model.endswith((".onnx", ".tflite")):
        return str((base / model).resolve())
    file_part, sep, attr = model.rpartition(":")
    if file_part.endswith(".py"):
        return f"{(base / file_part).resolve()}{sep}{attr}"
    return model
