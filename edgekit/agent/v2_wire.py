"""The Open Inference Protocol's tensors on the wire, both ways: JSON ``data`` and the binary tensor extension.

The binary tensor extension (Triton's ``binary_tensor_data``, also read and written by KServe's own client): the
body is a JSON header of ``Inference-Header-Content-Length`` bytes followed by the raw tensors, in the order of the
header's tensors that carry ``parameters.binary_data_size``, little-endian, row-major, BOOL one byte per element.
The agent reads requests and writes replies with it; ``edgekit compare --cloud URL`` writes requests and reads
replies. numpy only: this module runs on the device.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

HEADER_LENGTH = "Inference-Header-Content-Length"
MAX_ELEMENTS = 16 * 1024 * 1024
V2_TYPES = {"BOOL": "bool", "UINT8": "uint8", "UINT16": "uint16", "UINT32": "uint32", "UINT64": "uint64",
            "INT8": "int8", "INT16": "int16", "INT32": "int32", "INT64": "int64", "FP16": "float16",
            "FP32": "float32", "FP64": "float64"}
NUMPY_TO_V2 = {v: k for k, v in V2_TYPES.items()}
UNSUPPORTED_TYPES = {"BYTES": "strings", "BF16": "bfloat16"}


class WireError(ValueError):
    """A body or tensor that does not follow the protocol; the message names the part and what is wrong."""


def v2_datatype(dtype: np.dtype | str) -> str:
    """The v2 datatype of a numpy dtype, e.g. ``FP32``, ``BYTES`` for strings; a ``WireError`` for dtypes the
    protocol has no name for."""
    if np.dtype(dtype).kind in "USO":
        return "BYTES"
    name = np.dtype(dtype).name
    if name not in NUMPY_TO_V2:
        raise WireError(f"numpy {name} has no KServe v2 datatype (one of {sorted(NUMPY_TO_V2)})")
    return NUMPY_TO_V2[name]


def numpy_dtype(datatype: object, what: str) -> np.dtype:
    """The little-endian numpy dtype of a v2 datatype name."""
    if datatype in UNSUPPORTED_TYPES:
        raise WireError(f"{what}: datatype {datatype} ({UNSUPPORTED_TYPES[datatype]}) is not supported; "
                        f"use one of {list(V2_TYPES)}")
    if not isinstance(datatype, str) or datatype not in V2_TYPES:
        raise WireError(f"{what}: datatype must be one of {list(V2_TYPES)}")
    return np.dtype(V2_TYPES[datatype]).newbyteorder("<")


def short_shape(shape: list) -> str:
    """A shape for a message: at most 8 dimensions, each at most 12 digits (a request's shape can be any size)."""
    dims = [str(d) if isinstance(d, int) and abs(d) < 10**12 else "…" for d in shape[:8]]
    return f"[{', '.join(dims)}{', …' if len(shape) > 8 else ''}]"


def element_count(shape: object, what: str) -> int:
    """Elements in ``shape`` (a list of non-negative ints), refusing more than ``MAX_ELEMENTS``."""
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
        raise WireError(f"{what}: shape must be a list of integers")
    if len(shape) > 16 or any(d < 0 for d in shape):
        raise WireError(f"{what}: shape {short_shape(shape)} has negative dimensions or more than 16 of them")
    count = 1
    for dim in shape:  # stop early: a product of huge dimensions is slow to compute and cannot be printed
        count *= dim
        if count > MAX_ELEMENTS and 0 not in shape:
            raise WireError(f"{what}: shape {short_shape(shape)} has over {MAX_ELEMENTS} elements, the limit")
    return count


# ---------------------------------------------------------------- bodies

def split_body(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    """The JSON header and the binary tail of a body (all JSON without ``Inference-Header-Content-Length``)."""
    if header_length is None:
        return body, b""
    length = header_length.strip()
    if not length.isascii() or not length.isdigit() or int(length) > len(body):
        raise WireError(f"{HEADER_LENGTH} must be a byte count within the body's {len(body)} bytes")
    return body[:int(length)], body[int(length):]


def load_json(raw: bytes, what: str = "body") -> Any:
    """JSON from bytes (UTF-8, or UTF-16/32 as RFC 8259 allows detecting), with every failure as a ``WireError``."""
    if not raw.strip():
        raise WireError(f"the {what} is empty; expected a JSON object")
    try:
        return json.loads(raw)
    except UnicodeDecodeError:
        raise WireError(f"the {what} is not UTF-8 JSON") from None
    except RecursionError:
        raise WireError(f"the {what} nests JSON too deeply") from None
    except ValueError as exc:  # JSONDecodeError, and integers beyond Python's digit limit
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "a number is too long"
        raise WireError(f"the {what} is not valid JSON: {reason}") from None


def dump_body(header: dict, chunks: list[bytes]) -> tuple[bytes, int | None]:
    """A body from a JSON header and binary chunks, and the header length to send (None: all JSON).

    Non-finite floats are written as ``NaN``/``Infinity``, as Python's and rapidjson's readers accept; binary
    tensors carry them exactly."""
    raw = json.dumps(header, separators=(",", ":")).encode()  # ASCII: lone surrogates escaped, never raised on
    return (raw + b"".join(chunks), len(raw)) if chunks else (raw, None)


# ---------------------------------------------------------------- tensors

def read_tensors(tensors: list[dict], binary: bytes, what: str) -> list[np.ndarray]:
    """Arrays of v2 tensors (``name``, ``shape``, ``datatype``, and ``data`` or ``parameters.binary_data_size``),
    taking binary data from ``binary`` in order; all of ``binary`` must be used."""
    arrays, offset = [], 0
    if not isinstance(tensors, list) or not all(isinstance(t, dict) for t in tensors):
        raise WireError(f"the {what}s must be a list of tensor objects")
    for tensor in tensors:
        label = f"{what} '{str(tensor.get('name'))[:64]}'"
        dtype = numpy_dtype(tensor.get("datatype"), label)
        count = element_count(tensor.get("shape"), label)
        size = (tensor.get("parameters") or {}).get("binary_data_size")
        if size is not None:
            if "data" in tensor and tensor["data"] is not None:
                raise WireError(f"{label}: has both 'data' and parameters.binary_data_size")
            if not isinstance(size, int) or isinstance(size, bool) or size != count * dtype.itemsize:
                raise WireError(f"{label}: binary_data_size must be {count} × {dtype.itemsize} = "
                                f"{count * dtype.itemsize} bytes for {tensor['datatype']}"
                                f"{short_shape(tensor['shape'])}")
            if offset + size > len(binary):
                raise WireError(f"{label}: binary data ends after {len(binary) - offset} of its {size} bytes")
            arrays.append(np.frombuffer(binary, dtype, count, offset).reshape(tensor["shape"]))
            offset += size
        elif tensor.get("data") is None:
            raise WireError(f"{label}: has neither 'data' nor parameters.binary_data_size")
        else:
            arrays.append(array_from_data(tensor["data"], dtype, tensor["shape"], count, label))
    if offset != len(binary):
        raise WireError(f"{len(binary) - offset} bytes of binary data after the last binary tensor")
    return arrays


def array_from_data(data: object, dtype: np.dtype, shape: list[int], count: int, label: str) -> np.ndarray:
    """JSON ``data`` (flat or nested, row-major) as an array of ``dtype``, refusing values that do not fit it."""
    if not isinstance(data, list):
        raise WireError(f"{label}: data must be a JSON array")
    try:
        values = np.asarray(data)
    except (ValueError, TypeError, RecursionError):  # ragged nesting, nesting deeper than numpy's 64 dimensions
        raise WireError(f"{label}: data is not a rectangular array of numbers") from None
    if values.size != count:
        raise WireError(f"{label}: data has {values.size} values, shape {short_shape(shape)} needs {count}")
    if dtype.kind in "iu" and values.dtype.kind in "fO":  # floats, or integers numpy could not fit in int64
        values = _python_integers(data, dtype, label)
    kind = values.dtype.kind if values.size else dtype.kind
    if dtype.kind == "b" and kind != "b":
        raise WireError(f"{label}: BOOL data must be true/false")
    if kind not in "biuf" or (dtype.kind in "iu" and kind == "f"):
        wanted = "integers" if dtype.kind in "iu" else "numbers"
        raise WireError(f"{label}: data must be {wanted} within {v2_datatype(dtype)}'s range")
    if dtype.kind in "iu" and values.size:
        limits = np.iinfo(dtype)
        if values.min() < limits.min or values.max() > limits.max:
            raise WireError(f"{label}: data outside {v2_datatype(dtype)}'s range [{limits.min}, {limits.max}]")
    try:
        with np.errstate(over="raise"):
            return values.astype(dtype).reshape(shape)
    except FloatingPointError:
        raise WireError(f"{label}: data outside {v2_datatype(dtype)}'s range") from None


def _python_integers(data: list, dtype: np.dtype, label: str) -> np.ndarray:
    """Nested JSON integers as ``dtype`` (numpy reads a mix of int64 and larger integers as float64 or objects)."""
    try:
        flat = np.asarray(data, dtype=object).ravel()
    except (ValueError, TypeError, RecursionError):
        flat = np.asarray([None], dtype=object)
    if not all(type(v) is int for v in flat):
        raise WireError(f"{label}: data must be integers within {v2_datatype(dtype)}'s range")
    try:
        return np.array(list(flat), dtype=dtype)
    except OverflowError:
        raise WireError(f"{label}: data outside {v2_datatype(dtype)}'s range") from None


def tensor_entry(name: str, array: np.ndarray, binary: bool) -> tuple[dict, bytes | None]:
    """A v2 tensor for ``array``: JSON ``data``, or ``parameters.binary_data_size`` and its bytes."""
    entry = {"name": name, "shape": list(array.shape), "datatype": v2_datatype(array.dtype)}
    if array.dtype.kind in "USO":  # BYTES: JSON strings, or each element's length (4 bytes, LE) then its bytes
        texts = [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in array.ravel().tolist()]
        if not binary:
            return {**entry, "data": texts}, None
        raw = b"".join(len(b).to_bytes(4, "little") + b for b in (t.encode("utf-8", "surrogatepass") for t in texts))
        return {**entry, "parameters": {"binary_data_size": len(raw)}}, raw
    if not binary:
        return {**entry, "data": array.ravel().tolist()}, None
    raw = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
    return {**entry, "parameters": {"binary_data_size": len(raw)}}, raw


def encode_tensors(tensors: list[tuple[str, np.ndarray, bool]]) -> tuple[list[dict], list[bytes]]:
    """JSON entries and binary chunks of ``(name, array, binary)`` triples, in order."""
    entries, chunks = [], []
    for name, array, binary in tensors:
        entry, raw = tensor_entry(name, array, binary)
        entries.append(entry)
        if raw is not None:
            chunks.append(raw)
    return entries, chunks
