"""``edgekit.toml``: a project file holding any of the export options, its paths relative to the file.

This module reads the file and resolves its paths; ``options.load_project`` validates what it holds as
``ExportOptions``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..files import read_toml, regular_file

PROJECT_FILE = "edgekit.toml"
_PATH_KEYS = ("calib", "val", "out", "tokenizer", "token_file")


def read_project(folder: Path | None = None) -> tuple[dict[str, Any], Path] | None:
    """The table in ``edgekit.toml`` in ``folder`` (default: cwd), its paths made absolute; None if there is none.
    A value of the wrong type is left as it is, for the options model to refuse by name."""
    path = (folder or Path.cwd()) / PROJECT_FILE
    if not os.path.lexists(path):
        return None
    regular_file(path, "project file")
    values = read_toml(path, "edgekit.toml")
    _refuse_nul_paths(values, path)
    base = path.parent
    resolved = {key: str((base / value).resolve()) for key, value in values.items()
                if key in _PATH_KEYS and isinstance(value, str)}
    model = values.get("model")
    if isinstance(model, str) and model:
        resolved["model"] = _resolve_model(model, base)
    preprocess = values.get("preprocess")
    if isinstance(preprocess, str) and preprocess.endswith((".json", ".toml")):
        resolved["preprocess"] = str((base / preprocess).resolve())
    target = values.get("target")
    if isinstance(target, str) and target.endswith(".toml"):
        resolved["target"] = str((base / target).resolve())
    return {**values, **resolved}, path


def _refuse_nul_paths(values: dict[str, Any], path: Path) -> None:
    """A NUL character (TOML's ``\\u0000``) in a value read as a path: no file name holds one."""
    for key in (*_PATH_KEYS, "model", "preprocess", "target"):
        value = values.get(key)
        if isinstance(value, str) and "\0" in value:
            raise InputError(f"{path}: {key!r} = {value!r} holds a NUL character, which no file name can",
                             hint=f"fix '{key}' in {PROJECT_FILE}")


def _resolve_model(model: str, base: Path) -> str:
    """Make a file reference absolute; ``package.module:factory`` stays as written."""
    if model.endswith((".onnx", ".tflite")):
        return str((base / model).resolve())
    file_part, sep, attr = model.rpartition(":")
    if file_part.endswith(".py"):
        return f"{(base / file_part).resolve()}{sep}{attr}"
    return model
