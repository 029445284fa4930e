"""File helpers every side shares: atomic writes (readers see the old file or the new one, never half of either),
strict JSON, and content digests."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def to_json(data: Any, indent: int | None = 2) -> str:
    """Strict JSON (RFC 8259): a float that is not finite becomes ``null`` (Python's default would write the
    bare tokens ``NaN``/``Infinity``, which strict parsers reject); numpy scalars and arrays become numbers."""
    return json.dumps(_strict(data), indent=indent, allow_nan=False)


def _strict(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _strict(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(item) for item in value]
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):  # numpy scalar or array
        return _strict(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def parse_json(text: str) -> Any:
    """Parse JSON strictly: ``NaN``/``Infinity`` tokens are an error (``ValueError``), as they are for every other
    consumer of the text."""
    return json.loads(text, parse_constant=_refuse_constant)


def _refuse_constant(token: str) -> None:
    raise ValueError(f"{token} is not JSON (strict JSON has no NaN or Infinity)")


def read_json(path: Path) -> Any:
    """``parse_json`` of a UTF-8 file."""
    return parse_json(Path(path).read_text(encoding="utf-8"))


def write_json_atomic(path: Path, data: Any, mode: int | None = None) -> Path:
    """``to_json(data)`` plus a newline, written atomically."""
    return write_text_atomic(path, to_json(data) + "\n", mode)


def write_text_atomic(path: Path, text: str, mode: int | None = None) -> Path:
    """Write ``text`` to a temp file beside ``path``, fsync it, rename it over ``path``, fsync the folder."""
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    try:
        if mode is not None:
            os.fchmod(handle, mode)
        with os.fdopen(handle, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return path


def sha256_file(path: str | Path) -> str:
    """The file's sha256 as hex, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (where the platform lets a folder be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def scratch_cwd(prefix: str = "edgekit-scratch-") -> Iterator[Path]:
    """Run a block in a fresh temp folder as the current directory, removed afterwards whatever happens.

    For third-party tools that write scratch files into the current directory (ONNX Runtime's symbolic shape
    inference leaves ``sym_shape_infer_temp.onnx`` and ``<uuid>.data`` there when it fails). The working
    directory is process-wide: callers use absolute paths inside the block.
    """
    previous = os.getcwd()
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    os.chdir(folder)
    try:
        yield folder
    finally:
        os.chdir(previous)
        shutil.rmtree(folder, ignore_errors=True)
