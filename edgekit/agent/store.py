"""Content-addressed artifact store: ``<digest>.<format>`` plus ``<digest>.json``, written atomically.

One file per artifact: an OpenVINO IR (``.xml`` + ``.bin``) arrives and is kept as one bundle (``runtime.ir_bundle``).

A file is listed only once its metadata exists, and the metadata is written (temp, fsync, rename) after the
model file is in place, so an agent killed mid-upload never lists a partial artifact. Leftovers from such a
kill (temp files, a model without metadata) are removed when the store opens.

The store folder is the user's disk, so it is handled like one (``storeguard``): it carries an ownership marker,
a folder edgekit did not make is refused unless empty, only files of edgekit's own names are ever deleted (never
through a symlink), one agent at a time holds its lock, and an artifact whose metadata cannot be read is moved
aside to ``quarantine/`` and reported while the others keep serving.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from pathlib import Path

from ..errors import InputError
from ..files import fsync_dir, is_plain_file, parse_json, to_json
from ..runtime.registry import formats, runtime_for_bytes
from .storeguard import UPLOAD_PREFIX, UPLOAD_SUFFIX, StoreLock, claim_store, is_own_upload, quarantine

DIGEST = re.compile(r"^[0-9a-f]{64}$")
OWN_METADATA = ("json", "json.tmp")  # with the runtimes' formats: artifacts/<digest>.<kind>, the names it makes


class UnsupportedModel(ValueError):
    """Not a model the agent runs (pickle, zip/TorchScript, empty, …)."""


def sniff_format(head: bytes) -> str:
    """The model format from the first bytes; raises ``UnsupportedModel`` for anything else we can name."""
    if not head:
        raise UnsupportedModel("empty file")
    if head[:1] == b"\x80" and len(head) > 1 and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        raise UnsupportedModel("a Python pickle (never loaded: unpickling runs code)")
    if head[:4] == b"PK\x03\x04":
        raise UnsupportedModel("a zip archive (TorchScript or a PyTorch checkpoint?)")
    found = runtime_for_bytes(head)
    if found is not None and not found.fallback:
        return found.format
    if head[:5] == b"<?xml" or head[:4] == b"<net":
        raise UnsupportedModel("an OpenVINO .xml alone: an IR travels as one bundle with its weights (edgekit's "
                               "client builds it from the .xml and .bin)")
    if head[:1] in (b"{", b"<", b"#") or head[:4] == b"\x89HDF":
        raise UnsupportedModel(f"text, HTML or HDF5, not a model of a known runtime ({', '.join(formats())})")
    if found is None:
        raise UnsupportedModel(f"not a model of a known runtime ({', '.join(formats())})")
    return found.format  # the fallback (ONNX: protobuf has no magic number); the worker's parse decides


def check_store_location(root: Path) -> None:
    """An ``InputError`` unless ``root`` is a folder, or a folder that can be created (nothing is created here)."""
    hint = "pass --store with a folder this user can write (it is created if missing)"
    existing = next(p for p in (root, *root.parents) if p.exists())
    if not existing.is_dir():
        what = "is a file" if existing == root else f"lies under the file {existing}"
        raise InputError(f"--store {root} {what}, not a folder", hint=hint)
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(f"--store {root}: {existing} is not writable by this user", hint=hint)


class ArtifactStore:
    """The store at ``root``: claimed (marker), locked for this process, recovered from a killed upload."""

    def __init__(self, root: Path):
        self.root = Path(root)
        claim_store(self.root)
        self.lock = StoreLock(self.root)
        self.files = self.root / "artifacts"
        self.scratch = self.root / "incoming"
        self.quarantine = self.root / "quarantine"
        self.stray: list[str] = []  # entries in incoming/ and artifacts/ that edgekit did not make: left alone
        self.quarantined: list[dict] = []  # artifacts moved aside this run, with why
        self._recover()
        for path in sorted(self.files.glob("*.json")):
            self.meta(path.stem)  # moves unreadable metadata aside now, not at the first request

    def close(self) -> None:
        self.lock.release()

    def _recover(self) -> None:
        """Delete what a killed agent left (edgekit's own names, plain files only); report everything else."""
        for entry in sorted(self.scratch.iterdir()):
            if is_own_upload(entry.name) and is_plain_file(entry):
                entry.unlink(missing_ok=True)
            else:
                self.stray.append(f"incoming/{entry.name}")
        for path in sorted(self.files.iterdir()):
            name, (digest, _, kind) = path.name, path.name.partition(".")
            if not DIGEST.match(digest) or kind not in (*formats(), *OWN_METADATA) or not is_plain_file(path):
                self.stray.append(f"artifacts/{name}")
            elif name.endswith(".json.tmp") or (path.suffix != ".json" and not self._meta_path(digest).exists()):
                path.unlink(missing_ok=True)
            elif path.suffix == ".json" and self.model_path(digest) is None:
                path.unlink(missing_ok=True)

    def report(self) -> dict:
        """What ``/v1/info`` says about the store: its folder, what was moved aside, and entries left alone."""
        return {"path": str(self.root), "quarantined": list(self.quarantined), "stray": list(self.stray)}

    def _meta_path(self, digest: str) -> Path:
        return self.files / f"{digest}.json"

    def model_path(self, digest: str) -> Path | None:
        if not DIGEST.match(digest):
            return None
        return next((p for p in (self.files / f"{digest}.{f}" for f in formats()) if is_plain_file(p)), None)

    def meta(self, digest: str) -> dict | None:
        if not DIGEST.match(digest) or not is_plain_file(self._meta_path(digest)):
            return None
        model = self.model_path(digest)
        if model is None:
            return None
        try:
            meta = parse_json(self._meta_path(digest).read_text(encoding="utf-8"))
            problem = _meta_problem(meta, digest, model)
        except (OSError, ValueError) as exc:  # truncated, not UTF-8, not JSON
            problem = f"unreadable metadata: {type(exc).__name__}"
        if problem is None:
            return meta
        moved = quarantine(self.quarantine, [self._meta_path(digest), model])
        if moved:
            self.quarantined.append({"digest": digest, "reason": problem, "moved_to": moved})
        return None

    def list(self) -> list[dict]:
        metas = (self.meta(p.stem) for p in sorted(self.files.glob("*.json")))
        return [m for m in metas if m is not None]

    def delete(self, digest: str) -> bool:
        if self.meta(digest) is None:
            return False
        self._meta_path(digest).unlink()
        self.model_path(digest).unlink()
        return True

    def incoming(self):
        """A temp file for an upload, on the store's filesystem (so the final rename is atomic)."""
        return tempfile.NamedTemporaryFile(dir=self.scratch, prefix=UPLOAD_PREFIX, suffix=UPLOAD_SUFFIX,
                                           delete=False)

    def commit(self, temp_path: Path, digest: str, fmt: str, size: int) -> dict:
        """Move a verified upload into place, then publish its metadata."""
        final = self.files / f"{digest}.{fmt}"
        with open(temp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(temp_path, final)
        meta = {"digest": digest, "format": fmt, "size_bytes": size,
                "stored_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        pending = self.files / f"{digest}.json.tmp"
        with open(pending, "w") as fh:
            fh.write(to_json(meta, indent=None))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(pending, self._meta_path(digest))
        fsync_dir(self.files)
        return meta


def _meta_problem(meta: object, digest: str, model: Path) -> str | None:
    """Why ``meta`` is not the metadata of ``model``, or None."""
    if not isinstance(meta, dict):
        return "metadata is not a JSON object"
    if meta.get("digest") != digest or meta.get("format") != model.suffix[1:]:
        return "metadata names another digest or format"
    if type(meta.get("size_bytes")) is not int or not isinstance(meta.get("stored_at"), str):
        return "metadata lacks size_bytes or stored_at"
    return None
