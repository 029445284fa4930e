"""Atomic artifact folders: built in a hidden temp folder beside the destination, then renamed into place."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from ..errors import InputError


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
            self.path = Path(tempfile.mkdtemp(prefix=f".{self.dest.name}.tmp-", dir=self.dest.parent))
        except OSError as exc:
            raise InputError(f"cannot write to {self.dest.parent}: {exc.strerror or exc}",
                             hint="choose a writable --out folder") from exc

    def write_json(self, name: str, data: dict) -> Path:
        target = self.path / name
        with open(target, "w") as fh:
            json.dump(data, fh, indent=2, sort_keys=False)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        return target

    def commit(self) -> Path:
        """Move the finished folder into place; an old folder is only removed once the new one is there."""
        backup = None
        if self.dest.exists():
            backup = Path(tempfile.mkdtemp(prefix=f".{self.dest.name}.old-", dir=self.dest.parent))
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


def _first_missing(folder: Path) -> Path | None:
    """The outermost ancestor of ``folder`` (itself included) that does not exist yet."""
    missing = None
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            break
        missing = candidate
    return missing
