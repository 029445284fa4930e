"""Calibration and validation data: ``.npz`` keyed by input name (first axis = samples) or a folder of them.

Two layouts per input: for an input whose first axis is the batch (1 or symbolic), samples stack along that axis
(``(samples, *shape[1:])``); any input may instead carry an extra leading sample axis (``(samples, *shape)``),
which is how scalars (a sample rate) and inputs that do not start with the batch (an RNN state ``2 x 1 x 128``)
are stored. Values must fit the input's dtype: integers for integer inputs, never silently truncated floats.

A key named ``labels`` (1-D integers) is reserved for ground-truth classes, so accuracy can be reported
against real labels as well as against the original model.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..files import regular_file, sha256_file
from ..specs import InputSpec, example_arrays

LABELS_KEY = "labels"


@dataclass
class SampleSet:
    """Stacked samples per input (axis 0 = sample; each sample keeps a batch axis of 1)."""

    inputs: dict[str, np.ndarray]
    labels: np.ndarray | None
    origin: str
    synthetic: bool = False
    per_sample: frozenset[str] = frozenset()  # inputs stored as (samples, *shape): scalars, non-batch-first
    reload: dict | None = None  # load_data() arguments that read it again (sentences, images); None: ``origin``

    def __len__(self) -> int:
        return len(next(iter(self.inputs.values())))

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        for i in range(len(self)):
            yield {name: arr[i, ...] if name in self.per_sample else arr[i:i + 1] for name, arr in self.inputs.items()}

    def head(self, count: int) -> "SampleSet":
        labels = self.labels[:count] if self.labels is not None else None
        return SampleSet({k: v[:count] for k, v in self.inputs.items()}, labels, self.origin, self.synthetic,
                         self.per_sample, self.reload)

    def describe(self, folder: Path) -> dict:
        """The manifest's record of this data: its path (and the tokenizer's) relative to ``folder``, the file's
        sha256, and ``origin`` with the directories left out, so no workstation's absolute path is kept."""
        from ..manifest import relative_path

        described = {"origin": self.origin, "samples": len(self), "synthetic": self.synthetic,
                     "labels": self.labels is not None, "path": None, "sha256": None, "reload": None}
        if self.synthetic:
            return described
        path = Path((self.reload or {}).get("path") or self.origin)
        head, sep, rest = self.origin.partition(" (")
        reload = dict(self.reload or {}, path=relative_path(path, folder)) if self.reload else None
        if reload and "tokenizer" in reload:
            reload["tokenizer"] = relative_path(reload["tokenizer"], folder)
        return {**described, "origin": Path(head).name + sep + rest, "path": relative_path(path, folder),
                "sha256": sha256_file(path) if path.is_file() else None, "reload": reload}


def synthetic_samples(specs: list[InputSpec], count: int, seed: int = 0) -> SampleSet:
    """Random inputs, used only when the user gives no data (weak evidence, said so loudly)."""
    made = [example_arrays(specs, 1, seed + i) for i in range(count)]
    explicit = frozenset(s.name for s in specs if not batch_first(s))
    stacked = {s.name: (np.stack if s.name in explicit else np.concatenate)([m[s.name] for m in made])
               for s in specs}
    return SampleSet(stacked, None, "synthetic (random normal)", synthetic=True, per_sample=explicit)


def batch_first(spec: InputSpec) -> bool:
    """Whether the input's first axis is a batch axis of 1 (or symbolic) that samples can stack along."""
    return bool(spec.shape) and (spec.shape[0] == 1 or isinstance(spec.shape[0], str))


def load_samples(path: str | Path, specs: list[InputSpec]) -> SampleSet:
    """Load an ``.npz``/``.npy`` file or a folder of them, checked against the model's inputs."""
    path = Path(path)
    if not path.is_dir():
        regular_file(path, "data file")  # a FIFO or a device would block or never end: named, never read
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in (".npz", ".npy") and p.is_file()) \
        if path.is_dir() else [path]
    if not files:
        raise InputError(f"no .npz/.npy files in {path}", hint="put arrays keyed by input name in .npz files")
    parts = [_read_file(f, specs) for f in files]
    layouts = {s.name: {len(p[s.name].shape) == len(s.shape) + 1 for p in parts} for s in specs}
    mixed = [name for name, kinds in layouts.items() if len(kinds) > 1]
    if mixed:
        raise InputError(f"{path}: files store {mixed} with and without a separate sample axis",
                         hint="store every file the same way")
    per_sample = frozenset(name for name, kinds in layouts.items() if True in kinds)
    inputs = {s.name: np.concatenate([p[s.name] for p in parts]) for s in specs}
    labels = [p[LABELS_KEY] for p in parts if LABELS_KEY in p]
    if labels and len(labels) != len(parts):
        raise InputError(f"some files in {path} have '{LABELS_KEY}' and some do not", hint="label all or none")
    label_array = np.concatenate(labels) if labels else None
    count = len(next(iter(inputs.values())))
    if label_array is not None and len(label_array) != count:
        raise InputError(f"{path}: {len(label_array)} labels for {count} samples", hint="one label per sample")
    if count == 0:
        raise InputError(f"{path} holds no samples", hint="add at least one sample")
    return SampleSet(inputs, label_array, str(path), per_sample=per_sample)


def _read_file(path: Path, specs: list[InputSpec]) -> dict[str, np.ndarray]:
    try:
        if path.suffix.lower() == ".npy":
            if len(specs) != 1:
                raise InputError(f"{path}: a .npy file holds one array but the model has {len(specs)} inputs",
                                 hint=f"use an .npz keyed by {[s.name for s in specs]}")
            raw = {specs[0].name: np.load(path, allow_pickle=False)}
        else:
            with np.load(path, allow_pickle=False) as npz:
                raw = {k: npz[k] for k in npz.files}
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"cannot read {path}: {exc}", hint="save arrays with numpy.savez") from exc
    expected = {s.name for s in specs}
    missing = sorted(expected - raw.keys())
    extra = sorted(raw.keys() - expected - {LABELS_KEY})
    if missing or extra:
        raise InputError(f"{path}: keys {sorted(raw)} do not match the model inputs {sorted(expected)}"
                         + (f" (missing {missing})" if missing else "") + (f" (unexpected {extra})" if extra else ""),
                         hint="key each array by the model's input name; 'labels' may hold class labels")
    out = {}
    counts = set()
    for spec in specs:
        arr = _as_samples(raw[spec.name], spec, path)
        out[spec.name] = arr
        counts.add(len(arr))
    if len(counts) > 1:
        raise InputError(f"{path}: inputs have different sample counts {sorted(counts)}", hint="align the arrays")
    if LABELS_KEY in raw:
        labels = raw[LABELS_KEY]
        if labels.ndim != 1 or labels.dtype.kind not in "iu":
            raise InputError(f"{path}: '{LABELS_KEY}' must be a 1-D integer array", hint="store class indices")
        if len(labels) and labels.min() < 0:
            raise InputError(f"{path}: '{LABELS_KEY}' holds negative values (smallest {int(labels.min())}); labels "
                             "are class indices from 0", hint="store each sample's class index (0, 1, 2, …)")
        out[LABELS_KEY] = labels
    return out


def _as_samples(arr: np.ndarray, spec: InputSpec, path: Path) -> np.ndarray:
    """Return (N, *shape[1:]) for a batch-first input stacked along its batch axis, or (N, *shape) where the
    array carries its own sample axis; cast to the input's dtype where no value changes. Only numbers are
    accepted, and only finite ones: a NaN in the data would make every accuracy figure meaningless."""
    if arr.dtype.kind not in "biuf":
        raise InputError(f"{path}: '{spec.name}' holds {arr.dtype} values, not numbers",
                         hint=f"save '{spec.name}' as a numeric array ({spec.dtype}) with numpy.savez")
    rank = len(spec.shape)
    if arr.ndim == rank + 1:
        dims, got = spec.shape, arr.shape[1:]
    elif arr.ndim == rank and batch_first(spec):
        dims, got = spec.shape[1:], arr.shape[1:]
    else:
        raise InputError(f"{path}: '{spec.name}' has shape {arr.shape}, which does not fit the model input {spec}",
                         hint="stack samples along the first axis: shape (samples, *input_shape[1:]), or "
                              "(samples, *input_shape) for scalars and inputs that do not start with the batch")
    if not fits(got, dims):
        raise InputError(f"{path}: '{spec.name}' samples have shape {got}, the model wants {spec}",
                         hint="resize or reshape the data to the model's input shape")
    if arr.dtype.kind == "f":
        bad = ~np.isfinite(arr).all(axis=tuple(range(1, arr.ndim)))
        if bad.any():
            raise InputError(f"{path}: '{spec.name}' holds NaN or inf in {int(bad.sum())} of {len(bad)} samples",
                             hint="drop or repair those samples: accuracy on non-finite inputs means nothing")
    return cast_to_input(arr, spec, str(path))


def cast_to_input(arr: np.ndarray, spec: InputSpec, where: str) -> np.ndarray:
    """``arr`` as the input's dtype, refusing casts that change values: floats into integer or bool inputs,
    integers outside the integer type's range, non-numeric data."""
    want = spec.np_dtype
    if arr.dtype == want:
        return arr
    problem = None
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        problem = f"holds {arr.dtype} values"
    elif np.issubdtype(want, np.floating):
        return arr.astype(want)
    elif np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.complexfloating):
        problem = f"holds {arr.dtype} values"
    elif want == np.bool_:
        problem = None if np.isin(arr, (0, 1)).all() else f"holds {arr.dtype} values other than 0 and 1"
    elif arr.size and (arr.min() < np.iinfo(want).min or arr.max() > np.iinfo(want).max):
        problem = f"holds values {arr.min()}..{arr.max()} outside {want.name}"
    if problem:
        raise InputError(f"{where}: input '{spec.name}' takes {want.name} but the data {problem}",
                         hint=f"store '{spec.name}' as {want.name} (token ids, sample rates and masks are integers)")
    return arr.astype(want)


def fits(shape: tuple[int, ...], dims: tuple[int | str, ...]) -> bool:
    return len(shape) == len(dims) and all(isinstance(d, str) or d == s for s, d in zip(shape, dims))
