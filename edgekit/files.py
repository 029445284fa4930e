"""File helpers every side shares: atomic writes (readers see the old file or the new one, never half of either)
and content digests."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


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
