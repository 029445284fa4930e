"""Atomic artifact folders: built in a hidden staging folder beside the destination, then renamed into place.

A staging folder is named ``.NAME.tmp-PID-RANDOM`` and carries edgekit's staging marker (the run's pid and host)
while it is built. A run that was killed (SIGKILL, power loss) cannot remove its own; the next run writing the same
output removes the marked staging folders of that output whose process is gone, and says so. Nothing else in the
parent folder is looked at. The finished folder carries edgekit's ownership marker (``ownership.py``), which is what
``--overwrite`` checks before it replaces anything.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

from ..errors import InputError
from ..files import to_json, write_failure
from ..interrupts import raise_if_interrupted
from .ownership import (
    STAGING_MARKER,
    OutputLock,
    abandoned_staging,
    check_replaceable,
    owned_marker,
    protected_reason,
    write_owned_marker,
    write_staging_marker,
)

_STAGING = re.compile(r"^\.(.+)\.(tmp|old)-(\d+)-[A-Za-z0-9_]+$")


class StagedFolder:
    """A staging folder next to ``dest``; ``commit()`` renames it to ``dest``, otherwise ``discard()`` removes it.

    ``inputs``: the run's input files, whose folders are never replaced. ``kind`` is recorded in the marker.
    """

    def __init__(self, dest: Path, overwrite: bool = False, inputs: Iterable[Path] = (), kind: str = "artifacts"):
        self.dest = Path(dest).absolute()
        self.kind = kind
        self.inputs = list(inputs)
        self._lock = None
        try:
            _check_destination(self.dest, overwrite, self.inputs)
        except OSError as exc:
            raise _cannot_create(self.dest, exc) from None
        self._created_parent = _first_missing(self.dest.parent)
        self.path = None
        try:
            self.dest.parent.mkdir(parents=True, exist_ok=True)
            self._lock = OutputLock(self.dest)
            self.swept = sweep_stale_staging(self.dest)
            self.path = Path(tempfile.mkdtemp(prefix=f".{self.dest.name}.tmp-{os.getpid()}-", dir=self.dest.parent))
            write_staging_marker(self.path)
            os.chmod(self.path, 0o777 & ~_umask())  # mkdtemp makes it 0700; a finished folder follows the umask
        except BaseException as exc:
            self.discard()
            if isinstance(exc, OSError):
                raise _cannot_create(self.dest, exc) from None
            raise

    def write_json(self, name: str, data: dict) -> Path:
        target = self.path / name
        with open(target, "w", encoding="utf-8") as fh:
            fh.write(to_json(data) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        return target

    def commit(self) -> Path:
        """Mark the finished folder as edgekit's and move it into place; an old folder (checked again to be
        edgekit's, holding nothing else) is moved aside first and removed only once the new one is there."""
        raise_if_interrupted()  # never commit a run that was told to stop
        try:
            write_owned_marker(self.path, self.kind)
            backup = None
            if self.dest.exists() and not _removed_if_empty(self.dest):
                check_replaceable(self.dest, self.inputs)  # nothing of the user's appeared there since the start
                write_staging_marker(self.dest)  # so a run killed mid-swap gets it put back by the next one
                backup = Path(tempfile.mkdtemp(prefix=f".{self.dest.name}.old-{os.getpid()}-", dir=self.dest.parent))
                os.rmdir(backup)
                os.rename(self.dest, backup)
            os.rename(self.path, self.dest)
            (self.dest / STAGING_MARKER).unlink()
        except OSError as exc:
            raise write_failure(self.dest, exc) from None
        self._release()
        if backup is not None:
            shutil.rmtree(backup, ignore_errors=True)
        return self.dest

    def discard(self) -> None:
        """Remove the staging folder and any parent folders this object created (those only while empty)."""
        if self.path is not None:
            shutil.rmtree(self.path, ignore_errors=True)
        self._release()
        self._remove_created_parents()

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def _remove_created_parents(self) -> None:
        if self._created_parent is None:
            return
        for folder in (self.dest.parent, *self.dest.parent.parents):
            try:
                os.rmdir(folder)
            except OSError:
                return
            if folder == self._created_parent:
                return


def _removed_if_empty(folder: Path) -> bool:
    try:
        os.rmdir(folder)
    except OSError:
        return False
    return True


def _check_destination(dest: Path, overwrite: bool, inputs: list[Path]) -> None:
    if dest.is_symlink():
        raise InputError(f"output path {dest} is a symbolic link; edgekit does not write through links",
                         hint="choose another --out, or remove the link yourself")
    if dest.exists() and not dest.is_dir():
        raise InputError(f"output path {dest} exists and is not a folder", hint="choose another --out")
    if not dest.is_dir():
        return
    empty = not any(dest.iterdir())
    if not empty and not overwrite:
        raise InputError(f"output folder {dest} already exists and is not empty",
                         hint="pass --overwrite to replace an earlier edgekit output, or choose another --out")
    if not empty or protected_reason(dest, inputs) is not None:  # even empty, the current folder is not replaced
        check_replaceable(dest, inputs)


def sweep_stale_staging(dest: Path) -> list[Path]:
    """Remove ``dest``'s staging folders left by edgekit runs on this host whose process is gone; return them.

    A moved-aside old folder (``.NAME.old-…``) is removed only when NAME is there again; a run killed between
    moving the old folder aside and moving the new one in gets the old one put back."""
    removed = []
    for path in dest.parent.iterdir():
        match = _STAGING.match(path.name)
        if not match or match.group(1) != dest.name or not abandoned_staging(path):
            continue
        if match.group(2) == "old" and not os.path.lexists(dest):
            (path / STAGING_MARKER).unlink()
            os.rename(path, dest)
            continue
        if match.group(2) == "old" and owned_marker(path) is None:
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def _cannot_create(dest: Path, exc: OSError) -> Exception:
    if exc.errno == errno.ENAMETOOLONG:
        return InputError(f"output path {dest} is too long for the file system ({len(dest.name)} characters in "
                          f"its last part)", hint="choose a shorter --out")
    if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.EEXIST):
        return InputError(f"cannot create the output folder {dest}: {exc.strerror or exc}"
                          + (f" ({exc.filename})" if exc.filename and str(exc.filename) != str(dest) else ""),
                          hint="choose an --out whose parent folders are folders, not files")
    return write_failure(dest, exc)


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def _first_missing(folder: Path) -> Path | None:
    """The outermost ancestor of ``folder`` (itself included) that does not exist yet."""
    missing = None
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            break
        missing = candidate
    return missing
