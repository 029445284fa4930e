"""Atomic artifact folders: built in a hidden temp folder beside the destination, then renamed into place.

A staging folder is named ``.NAME.tmp-PID-RANDOM`` and holds a marker file while it is being built. A run that
was killed (SIGKILL, power loss) cannot remove its own; the next run in the same parent folder removes every
marked staging folder whose process is gone, and says so.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

from ..errors import InputError
from ..files import to_json
from ..interrupts import raise_if_interrupted

MARKER = ".edgekit-staging"
_STAGING = re.compile(r"^\.(.+)\.(tmp|old)-(\d+)-")


class StagedFolder:
    """A temp folder next to ``dest``; ``commit()`` renames it to ``dest``, otherwise it is removed."""

    def __init__(self, dest: Path, overwrite: bool = False):
        self.dest = Path(dest).absolute()
        self.overwrite = overwrite
        if self.dest.exists() and not self.dest.is_dir():
            raise InputError(f"output path {self.dest} exists and is not a folder", hint="choose another --out")
        if self.dest.is_dir() and any(self.dest.iterdir()) and not overwrite:
            raise InputError(f"output folder {self.dest} already exists and is not empty",
                             hint="pass --overwrite to replace it, or choose another --out")
        self._created_parent = _first_missing(self.dest.parent)
        try:
            self.dest.parent.mkdir(parents=True, exist_ok=True)
            self.swept = sweep_stale_staging(self.dest.parent)
            self.path = Path(tempfile.mkdtemp(prefix=f".{self.dest.name}.tmp-{os.getpid()}-", dir=self.dest.parent))
            os.chmod(self.path, 0o777 & ~_umask())  # mkdtemp makes it 0700; a finished folder follows the umask
            (self.path / MARKER).touch()
        except OSError as exc:
            raise InputError(f"cannot create the output folder {self.dest}: {exc.strerror or exc}"
                             + (f" ({exc.filename})" if exc.filename and str(exc.filename) != str(self.dest) else ""),
                             hint="choose a writable --out folder") from exc

    def write_json(self, name: str, data: dict) -> Path:
        target = self.path / name
        with open(target, "w") as fh:
            fh.write(to_json(data) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        return target

    def commit(self) -> Path:
        """Move the finished folder into place; an old folder is only removed once the new one is there."""
        raise_if_interrupted()  # never commit a run that was told to stop
        (self.path / MARKER).unlink()
        backup = None
        if self.dest.exists():
            backup = Path(tempfile.mkdtemp(prefix=f".{self.dest.name}.old-{os.getpid()}-", dir=self.dest.parent))
            os.rmdir(backup)
            os.rename(self.dest, backup)
        os.rename(self.path, self.dest)
        if backup is not None:
            shutil.rmtree(backup, ignore_errors=True)
        return self.dest

    def discard(self) -> None:
        """Remove the temp folder and any parent folders this object created."""
        shutil.rmtree(self.path, ignore_errors=True)
        if self._created_parent is not None:
            shutil.rmtree(self._created_parent, ignore_errors=True)


def sweep_stale_staging(parent: Path) -> list[Path]:
    """Remove staging folders in ``parent`` left by edgekit runs whose process no longer exists; return them.

    A backup of a replaced folder (``.NAME.old-…``) is only removed when NAME is there again; a run killed
    between moving the old folder aside and moving the new one in gets the old one put back."""
    removed = []
    for path in parent.iterdir():
        match = _STAGING.match(path.name)
        if not match or not path.is_dir() or _alive(int(match.group(3))):
            continue
        name, kind = match.group(1), match.group(2)
        if kind == "old" and not (parent / name).exists():
            os.rename(path, parent / name)
        elif kind == "old" or (path / MARKER).exists():
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


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
