"""What edgekit may delete or replace: only folders it marked as its own, never a place the user works in.

- A finished folder (an export's artifact folder, a compressed model) carries ``OWNED_MARKER``: edgekit's identity
  and the names of the entries it wrote there. ``--overwrite`` replaces such a folder, and only when nothing else
  was put into it since; any other folder is refused with its path and the fix.
- A staging folder (``.NAME.tmp-…`` while a run builds, ``.NAME.old-…`` while it swaps) carries ``STAGING_MARKER``:
  the run's pid and host. Only such folders of a dead run on this host are ever swept, one output at a time.
- Whatever the markers say, edgekit never replaces ``/``, ``$HOME``, the current folder, an ancestor of them, or a
  folder that holds the run's own input files.
- ``OutputLock``: one writer per output (``flock`` on ``.NAME.edgekit-lock`` beside it); the kernel drops the lock
  of a dead process, so a stale lock file is simply taken over.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from collections.abc import Iterable
from pathlib import Path

from ..errors import InputError, WriteError
from ..files import is_plain_file, is_real_folder, read_json, write_json_atomic

OWNED_MARKER = ".edgekit-owned.json"
STAGING_MARKER = ".edgekit-staging"
OWNER = "edgekit"
_ALWAYS_OURS = {OWNED_MARKER, STAGING_MARKER}


def write_owned_marker(folder: Path, kind: str) -> None:
    """Mark ``folder`` as edgekit's ``kind`` folder, listing the entries it holds now."""
    marker = {"owner": OWNER, "kind": kind, "format": 1,
              "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "entries": sorted(e for e in os.listdir(folder) if e not in _ALWAYS_OURS),
              "note": "written by edgekit: `--overwrite` replaces this folder only while it holds nothing else"}
    write_json_atomic(folder / OWNED_MARKER, marker)


def owned_marker(folder: Path) -> dict | None:
    """The folder's ownership marker, or None when it has none (or one that is not edgekit's)."""
    path = folder / OWNED_MARKER
    if not is_plain_file(path):
        return None
    try:
        marker = read_json(path)
    except (OSError, ValueError):
        return None
    if not isinstance(marker, dict) or marker.get("owner") != OWNER or not isinstance(marker.get("entries"), list):
        return None
    return marker


def own_entries(folder: Path, names: Iterable[str]) -> None:
    """Add ``names`` (files edgekit just wrote into a marked ``folder``) to its marker."""
    marker = owned_marker(folder)
    if marker is None:
        return
    marker["entries"] = sorted(set(marker["entries"]) | set(names))
    write_json_atomic(folder / OWNED_MARKER, marker)


def foreign_entries(folder: Path) -> list[str]:
    """Entries of a marked ``folder`` that edgekit did not write (all of them when it carries no marker)."""
    marker = owned_marker(folder)
    known = set(marker["entries"]) if marker else set()
    return sorted(e for e in os.listdir(folder) if e not in known and e not in _ALWAYS_OURS)


def run_inputs(*paths) -> list[Path]:
    """The existing files and folders among a run's arguments (a model, ``file.py:factory``, data, a tokenizer, a
    preprocessing file)."""
    found = []
    for path in paths:
        if not isinstance(path, (str, Path)) or not str(path):
            continue
        for candidate in (str(path), str(path).rpartition(":")[0]):
            if candidate and os.path.exists(candidate):
                found.append(Path(candidate))
                break
    return found


def protected_reason(folder: Path, inputs: Iterable[Path] = ()) -> str | None:
    """Why ``folder`` may never be replaced, or None: the root, ``$HOME``, the current folder or an ancestor of
    either, or a folder holding one of ``inputs``."""
    folder = Path(os.path.realpath(folder))
    if folder == Path(folder.anchor):
        return "it is the file system's root"
    places = {"your home folder": os.path.expanduser("~"), "the current folder": os.getcwd()}
    for what, place in places.items():
        place = Path(os.path.realpath(place))
        if folder == place:
            return f"it is {what}"
        if folder in place.parents:
            return f"it holds {what} ({place})"
    for path in inputs:
        real = Path(os.path.realpath(path))
        if folder == real or folder in real.parents:
            return f"it holds this run's input {path}"
    return None


def check_replaceable(dest: Path, inputs: Iterable[Path] = (), what: str = "output folder") -> None:
    """An ``InputError`` unless the existing, non-empty ``dest`` is an edgekit folder that ``--overwrite`` may
    replace: marked as edgekit's, holding nothing else, and no place the user works in."""
    reason = protected_reason(dest, inputs)
    if reason is not None:
        real = os.path.realpath(dest)
        shown = f"{dest} ({real})" if real != str(dest) else str(dest)
        raise InputError(f"{what} {shown} cannot be replaced: {reason}",
                         hint="pass --out a new folder of its own, for example edgekit-out/NAME")
    if owned_marker(dest) is None:
        raise InputError(f"{what} {dest} was not written by edgekit (no {OWNED_MARKER} in it), so --overwrite "
                         "does not replace it", hint="choose another --out, or move that folder away yourself")
    foreign = foreign_entries(dest)
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise InputError(f"{what} {dest} holds files edgekit did not write ({shown}); --overwrite would delete them",
                         hint="move those files out of the folder, or choose another --out")


def write_staging_marker(folder: Path) -> None:
    (folder / STAGING_MARKER).write_text(json.dumps({"owner": OWNER, "pid": os.getpid(),
                                                     "host": socket.gethostname()}) + "\n")


def abandoned_staging(folder: Path) -> bool:
    """``folder`` is a staging folder of an edgekit run on this host whose process is gone."""
    path = folder / STAGING_MARKER
    if not is_real_folder(folder) or not is_plain_file(path):
        return False
    try:
        marker = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (isinstance(marker, dict) and marker.get("owner") == OWNER and marker.get("host") == socket.gethostname()
            and isinstance(marker.get("pid"), int) and not _pid_alive(marker["pid"]))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):  # another user's process, or a pid no process can have
        return True
    return True


class OutputLock:
    """An exclusive, non-blocking ``flock`` on ``.NAME.edgekit-lock`` beside ``dest``, held while a run writes it.
    ``WriteError`` when another process holds it; ``OSError`` when the lock file cannot be made."""

    def __init__(self, dest: Path):
        self.path = dest.parent / f".{dest.name}.edgekit-lock"
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
                os.close(fd)
                raise WriteError(f"output {dest} is being written by another edgekit run (pid {holder})",
                                 hint="wait for that run to finish, or choose another --out") from None
            if _same_file(fd, self.path):  # not unlinked by the previous holder between open and flock
                break
            os.close(fd)
        self._fd = fd
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)

    def release(self) -> None:
        if self._fd is not None:
            self.path.unlink(missing_ok=True)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def _same_file(fd: int, path: Path) -> bool:
    try:
        now = os.stat(path, follow_symlinks=False)
    except OSError:
        return False
    held = os.fstat(fd)
    return (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino)
