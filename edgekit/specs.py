"""Model input specifications: ``NAME:1x3x224x224[:float32]``, with symbolic (dynamic) dimensions; and output
kinds: ``NAME:class|regression|embedding|detection|mask|sequence`` (how the accuracy gate compares that output;
docs/accuracy.md)."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from .errors import InputError

DTYPES = {
    "float32": np.float32, "float16": np.float16, "float64": np.float64,
    "int64": np.int64, "int32": np.int32, "int8": np.int8, "uint8": np.uint8, "bool": np.bool_,
}
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-/]*$")
_SYMBOL = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class InputSpec:
    """One model input. A ``str`` dimension is dynamic (e.g. ``"batch"``)."""

    name: str
    shape: tuple[int | str, ...]
    dtype: str = "float32"

    @property
    def np_dtype(self) -> np.dtype:
        return np.dtype(DTYPES[self.dtype])

    def concrete_shape(self, dynamic_size: int = 1) -> tuple[int, ...]:
        return tuple(d if isinstance(d, int) else dynamic_size for d in self.shape)

    @property
    def sized(self) -> bool:
        """Whether every dim but the batch is a number (a symbolic height or sequence length has no size)."""
        return not any(isinstance(d, str) for d in self.shape[1:])

    def with_dynamic_batch(self) -> "InputSpec":
        if not self.shape or isinstance(self.shape[0], str):
            return self
        return InputSpec(self.name, ("batch", *self.shape[1:]), self.dtype)

    def with_static_batch(self) -> "InputSpec":
        """This input with a symbolic batch dim fixed to 1 (the exporter's static-batch default)."""
        if not self.shape or not isinstance(self.shape[0], str):
            return self
        return InputSpec(self.name, (1, *self.shape[1:]), self.dtype)

    def __str__(self) -> str:
        return f"{self.name}:{'x'.join(str(d) for d in self.shape)}:{self.dtype}"

    def to_dict(self) -> dict:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}


def parse_input_spec(text: str) -> InputSpec:
    """Parse ``NAME:DIMxDIM...[:DTYPE]``; dims are positive ints or symbols like ``batch``."""
    fix = "write it as NAME:1x3x224x224 or NAME:batchx3x224x224:float32"
    parts = text.split(":")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
        raise InputError(f"bad input spec '{text}'", hint=fix)
    name, dims_text = parts[0], parts[1]
    dtype = parts[2] if len(parts) == 3 else "float32"
    if not _NAME.match(name):
        raise InputError(f"bad input name '{name}' in spec '{text}'", hint=fix)
    if dtype not in DTYPES:
        raise InputError(f"unknown dtype '{dtype}' in spec '{text}'; valid: {', '.join(DTYPES)}", hint=fix)
    dims: list[int | str] = []
    for token in dims_text.split("x") if dims_text != "scalar" else []:
        if token.isdigit() and int(token) > 0:
            dims.append(int(token))
        elif _SYMBOL.match(token):
            dims.append(token)
        else:
            raise InputError(f"bad dimension '{token}' in spec '{text}'", hint=fix)
    return InputSpec(name, tuple(dims), dtype)


def specs_from_arrays(names: list[str], arrays: list[np.ndarray]) -> list[InputSpec]:
    """Specs describing concrete example arrays."""
    out = []
    for name, arr in zip(names, arrays):
        dtype = next((k for k, v in DTYPES.items() if np.dtype(v) == arr.dtype), None)
        if dtype is None:
            raise InputError(f"input '{name}' has unsupported dtype {arr.dtype}",
                             hint=f"use one of: {', '.join(DTYPES)}")
        out.append(InputSpec(name, tuple(int(d) for d in arr.shape), dtype))
    return out


def example_arrays(specs: list[InputSpec], batch: int = 1, seed: int = 0) -> dict[str, np.ndarray]:
    """Random arrays matching the specs (normal floats, small non-negative ints); scalars are 0-d arrays."""
    rng = np.random.default_rng(seed)
    out = {}
    for spec in specs:
        shape = spec.concrete_shape(batch)
        if np.issubdtype(spec.np_dtype, np.floating):
            value = rng.standard_normal(shape)
        elif spec.np_dtype == np.bool_:
            value = rng.integers(0, 2, shape)
        else:
            value = rng.integers(0, 10, shape)
        out[spec.name] = np.asarray(value).astype(spec.np_dtype)
    return out


OUTPUT_KINDS = ("class", "regression", "embedding", "detection", "mask", "sequence")


def parse_output_kinds(texts: list[str]) -> dict[str, str]:
    """``["scores:class", "boxes:regression"]`` -> ``{"scores": "class", "boxes": "regression"}``."""
    kinds: dict[str, str] = {}
    for text in texts:
        name, sep, kind = text.rpartition(":")
        if not sep or not name or kind not in OUTPUT_KINDS:
            raise InputError(f"bad output kind '{text}'",
                             hint=f"write it as OUTPUT_NAME:KIND with KIND one of {', '.join(OUTPUT_KINDS)}")
        if name in kinds and kinds[name] != kind:
            raise InputError(f"output '{name}' is declared both {kinds[name]} and {kind}", hint="declare it once")
        kinds[name] = kind
    return kinds


def resolve_output_kinds(declared: dict[str, str], output_names: list[str]) -> list[str | None]:
    """The declared kind per output position (None: inferred by the gate); unknown names are an error."""
    unknown = sorted(set(declared) - set(output_names))
    if unknown:
        raise InputError(f"--output names {unknown} are not outputs of the model; its outputs are {output_names}",
                         hint="use the model's output names (outputs of a PyTorch model are output_0, output_1, …)")
    return [declared.get(name) for name in output_names]
