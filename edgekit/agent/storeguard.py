"""The store folder is somebody's disk: claim it with a marker, hold it with a lock, delete only edgekit's files.

- ``check_store_ownership`` (read-only, before anything is bound or created): a folder is used only when it is
  missing, empty, carries edgekit's marker, or is a store of an agent from before the marker (nothing but
  ``artifacts/`` and ``incoming/`` with edgekit's own file names). Anything else is refused with the path and the fix.
- ``claim_store`` creates the folders and writes the marker; ``artifacts``, ``incoming`` and ``quarantine`` must be
  real folders, never symlinks (so nothing is ever deleted or written through one).
- ``StoreLock``: ``flock`` on ``agent.lock``, so two agents cannot share a store; the kernel drops the lock of a dead
  agent, so a stale lock file (its pid gone) is simply taken over.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import time
from pathlib import Path

from ..errors import InputError
from ..files import is_plain_file, is_real_folder, write_text_atomic
from .auth import AgentSetupError

MARKER = ".edgekit-store"
LOCK = "agent.lock"
FOLDERS = ("artifacts", "incoming", "quarantine")
UPLOAD_PREFIX = "upload-"
UPLOAD_SUFFIX = ".part"
_LEGACY_NAMES = {"artifacts": re.compile(r"^[0-9a-f]{64}\.(onnx|tflite|openvino|json|json\.tmp)$"),
                 "incoming": re.compile(r"^tmp[a-z0-9_]{8}(\.(onnx|tflite|openvino))?$")}


def is_own_upload(name: str) -> bool:
    """An upload's temp file name in ``incoming/`` (this version's, or an agent's from before the marker)."""
    return name.startswith(UPLOAD_PREFIX) or bool(_LEGACY_NAMES["incoming"].match(name))


def _marker_ok(root: Path) -> bool:
    try:
        marker = json.loads((root / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(marker, dict) and marker.get("owner") == "edgekit agent"


def _legacy_store(root: Path, entries: list[str]) -> bool:
    """A store of an agent from before the marker: only its two folders, holding only names it made."""
    if not set(entries) <= set(_LEGACY_NAMES):
        return False
    for folder, pattern in _LEGACY_NAMES.items():
        path = root / folder
        if not path.exists():
            continue
        if not is_real_folder(path):
            return False
        if not all(pattern.match(entry.name) and is_plain_file(entry) for entry in path.iterdir()):
            return False
    return True


def _ownership_error(root: Path, what: str) -> InputError:
    return InputError(f"--store {root} {what}; edgekit deletes files in its store, so it uses only a folder it "
                      f"created (marked by {MARKER})",
                      hint=f"pass --store with a new or empty folder (for example {root / 'edgekit-agent'}), or move "
                           f"those files elsewhere")


def check_store_ownership(root: Path) -> None:
    """An ``InputError`` unless edgekit may use ``root`` as its store. Reads only; creates nothing."""
    root = Path(root)
    if not root.exists():
        return
    entries = sorted(os.listdir(root))
    if not entries:
        return
    if MARKER in entries:
        if not _marker_ok(root):
            raise _ownership_error(root, f"has a {MARKER} file that is not edgekit's")
    elif not _legacy_store(root, entries):
        shown = ", ".join(entries[:5]) + (f" and {len(entries) - 5} more" if len(entries) > 5 else "")
        raise _ownership_error(root, f"is not empty ({shown}) and edgekit did not create it")
    for folder in FOLDERS:
        path = root / folder
        if os.path.lexists(path) and not is_real_folder(path):
            raise InputError(f"--store {root}: {path} is a symlink or a file, not a folder; edgekit never deletes "
                             "or writes through a link", hint=f"remove the link {path} (the agent recreates the "
                                                              "folder), or pass another --store")


def claim_store(root: Path) -> None:
    """Check, then create the store's folders and its marker (mode 0700)."""
    root = Path(root)
    check_store_ownership(root)
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not (root / MARKER).exists():
        marker = {"owner": "edgekit agent", "format": 1,
                  "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                  "note": "a store of `edgekit agent serve`: it deletes only files it made here (incoming/upload-*, "
                          "artifacts/<sha256>.*); see docs/agent.md"}
        write_text_atomic(root / MARKER, json.dumps(marker, indent=2) + "\n", mode=0o644)
    for folder in FOLDERS:
        (root / folder).mkdir(exist_ok=True, mode=0o700)


class StoreLock:
    """An exclusive ``flock`` on ``<store>/agent.lock`` for this process's life, with its pid written inside."""

    def __init__(self, root: Path):
        self.path = Path(root) / LOCK
        try:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise AgentSetupError(f"cannot open the store's lock {self.path}: {exc.strerror}",
                                  hint="remove it if it is a symlink, or pass another --store") from None
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self._fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(self._fd)
            raise AgentSetupError(f"--store {root} is in use by another edgekit agent (pid {holder})",
                                  hint="stop that agent, or give this one its own --store") from None
        self.previous = os.pread(self._fd, 32, 0).decode(errors="replace").strip() or None  # a dead agent's pid
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, f"{os.getpid()}\n".encode(), 0)

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def quarantine(folder: Path, paths: list[Path]) -> list[str]:
    """Move the plain files among ``paths`` into ``folder`` (never overwriting); the names they got there."""
    folder.mkdir(exist_ok=True, mode=0o700)
    moved = []
    for path in paths:
        if not is_plain_file(path):
            continue
        target, n = folder / path.name, 1
        while os.path.lexists(target):
            target, n = folder / f"{path.name}.{n}", n + 1
        os.replace(path, target)
        moved.append(f"quarantine/{target.name}")
    return moved
