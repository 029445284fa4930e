"""How a model artifact travels as one file: ONNX and TFLite files as they are, an OpenVINO IR as a bundle.

An OpenVINO IR is two files, ``model.xml`` (the graph) and ``model.bin`` (the weights) beside it. The artifact
folder keeps that standard pair, so OpenVINO users deploy it as usual. The agent's store is content-addressed,
one file per digest, so an IR is uploaded, stored and digested as one bundle:

    MAGIC (8 bytes) | length of the .xml (uint64, little-endian) | the .xml bytes | the .bin bytes

The bundle's sha256 is the IR's digest everywhere (manifest, agent store, validate). It is built on the fly
from the pair (streamed, never written), and read back from bytes, so the device never touches a path named
inside the file.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterator
from pathlib import Path

MAGIC = b"EKOVIR1\n"
HEADER = struct.Struct("<8sQ")
CHUNK_BYTES = 1 << 20
IR_SUFFIX = ".xml"


class BadBundle(ValueError):
    """Bytes that are not an edgekit OpenVINO IR bundle."""


def is_ir(path: str | Path) -> bool:
    return Path(path).suffix == IR_SUFFIX


def weights_path(xml_path: str | Path) -> Path:
    """The ``.bin`` that belongs to an IR's ``.xml``."""
    return Path(xml_path).with_suffix(".bin")


def artifact_files(path: str | Path) -> list[Path]:
    """Every file an artifact consists of: the model file, and an IR's weights beside it."""
    path = Path(path)
    return [path, weights_path(path)] if is_ir(path) else [path]


def upload_size(path: str | Path) -> int:
    """Bytes of the artifact as it travels (the bundle for an IR)."""
    sizes = [p.stat().st_size for p in artifact_files(path)]
    return HEADER.size + sum(sizes) if is_ir(path) else sizes[0]


def upload_chunks(path: str | Path) -> Iterator[bytes]:
    """The artifact as it travels, in chunks: the file itself, or an IR's bundle."""
    files = artifact_files(path)
    if is_ir(path):
        yield HEADER.pack(MAGIC, files[0].stat().st_size)
    for part in files:
        with open(part, "rb") as fh:
            yield from iter(lambda: fh.read(CHUNK_BYTES), b"")


def artifact_digest(path: str | Path) -> str:
    """The sha256 the agent stores the artifact under: of the file, or of an IR's bundle."""
    digest = hashlib.sha256()
    for chunk in upload_chunks(path):
        digest.update(chunk)
    return digest.hexdigest()


def is_bundle(head: bytes) -> bool:
    return head[:len(MAGIC)] == MAGIC


def unpack(data: bytes) -> tuple[bytes, memoryview]:
    """(xml, weights) of a bundle; ``BadBundle`` when the header or the lengths do not fit."""
    if len(data) < HEADER.size or not is_bundle(data):
        raise BadBundle("not an edgekit OpenVINO IR bundle (bad magic)")
    _, xml_length = HEADER.unpack_from(data)
    if xml_length == 0 or xml_length > len(data) - HEADER.size:
        raise BadBundle(f"the bundle's .xml length {xml_length} does not fit its {len(data)} bytes")
    view = memoryview(data)
    return bytes(view[HEADER.size:HEADER.size + xml_length]), view[HEADER.size + xml_length:]
