"""File helpers every side shares: atomic writes (readers see the old file or the new one, never half of either),
strict JSON, and content digests."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import math
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import InputError, WriteError

DISK_FULL = {errno.ENOSPC, errno.EDQUOT}
NOT_WRITABLE = {errno.EROFS, errno.EACCES, errno.EPERM}


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
    consumer of the text. Nesting too deep for the parser is a ``ValueError`` too."""
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise ValueError("nested too deeply to be read (edgekit's files nest a few levels)") from None


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


def is_plain_file(path: str | Path) -> bool:
    """A regular file itself, not a symlink to one (and not a folder, device or fifo)."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def is_real_folder(path: str | Path) -> bool:
    """A folder itself, not a symlink to one."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def write_failure(target: str | Path, exc: OSError) -> WriteError:
    """The one-line error for an ``OSError`` met while writing ``target``: a full disk and a read-only or
    forbidden folder say so (exit 8), anything else gives the system's reason."""
    where = f" ({exc.filename})" if exc.filename and str(exc.filename) != str(target) else ""
    if exc.errno in DISK_FULL:
        return WriteError(f"no space left on the device while writing {target}{where}; nothing was kept",
                          hint="free some space (or raise the quota) and run again, or choose an --out on another disk")
    if exc.errno in NOT_WRITABLE:
        return WriteError(f"cannot write {target}: {exc.strerror}{where}",
                          hint="choose a folder you can write to (--out), or fix its permissions")
    return WriteError(f"cannot write {target}: {exc.strerror or exc}{where}", hint="choose another --out")


def is_disk_failure(exc: BaseException) -> bool:
    """An ``OSError`` that says the disk is full or read-only: never a model's fault."""
    return isinstance(exc, OSError) and exc.errno in DISK_FULL | {errno.EROFS}


def regular_file(path: str | Path, what: str) -> Path:
    """``path`` if it is a regular file (after links); otherwise an ``InputError`` naming what it is instead."""
    path = Path(path)
    kind = _file_kind(path)
    if kind == _NOT_FOUND:
        raise InputError(f"{what} not found: {path}", hint="check the path")
    if kind is not None:
        raise InputError(f"{what} {path} {kind}", hint=f"pass the path of a regular {what}")
    return path


def existing_folder(path: str | Path, what: str) -> Path:
    """``path`` if it is a folder (after links); otherwise an ``InputError`` naming what it is instead."""
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        missing = _missing(exc)
        message = f"{what} not found: {path}" if missing == _NOT_FOUND else f"{what} {path} {missing}"
        raise InputError(message, hint=f"pass the path of the {what}") from None
    if not stat.S_ISDIR(mode):
        raise InputError(f"{what} {path} is {_kind_of(mode)}, not a folder", hint=f"pass the path of the {what}")
    return path


def _file_kind(path: Path) -> str | None:
    """None for a regular file; otherwise the words for what ``path`` is."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        return _missing(exc)
    if stat.S_ISREG(mode):
        return None
    return f"is {_kind_of(mode)}, not a file"


_NOT_FOUND = "not found"


def _missing(exc: OSError) -> str:
    if exc.errno in (errno.ENOENT, errno.ENOTDIR):
        return _NOT_FOUND
    if exc.errno == errno.ELOOP:
        return "is a symbolic link that loops (it never reaches a file)"
    return f"cannot be opened: {exc.strerror}"


def _kind_of(mode: int) -> str:
    for test, words in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe (FIFO)"),
                        (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                        (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return words
    return "not a regular file"


def read_toml(path: Path, save_as: str) -> dict:
    """A UTF-8 TOML file as a dict; unreadable, non-UTF-8 or malformed text is an ``InputError`` (``save_as``
    names the file in the hint)."""
    import tomllib

    try:
        return tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise InputError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start}); TOML files are UTF-8",
                         hint=f"save {save_as} as UTF-8") from None
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}", hint="check the file's permissions") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: not valid TOML: {exc}", hint="fix the TOML syntax") from exc


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
