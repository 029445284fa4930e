"""Calibration and validation data: ``.npz`` keyed by input name (first axis = samples) or a folder of them.

A key named ``labels`` (1-D integers) is reserved for ground-truth classes, so accuracy can be reported
against real labels as well as against the original model.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InputError
from .specs import InputSpec, example_arrays

LABELS_KEY = "labels"


@dataclass
class SampleSet:
    """Stacked samples per input (axis 0 = sample; each sample keeps a batch axis of 1)."""

    inputs: dict[str, np.ndarray]
    labels: np.ndarray | None
    origin: str
    synthetic: bool = False

    def __len__(self) -> int:
        return len(next(iter(self.inputs.values())))

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        for i in range(len(self)):
            yield {name: arr[i:i + 1] for name, arr in self.inputs.items()}

    def head(self, count: int) -> "SampleSet":
        labels = self.labels[:count] if self.labels is not None else None
        return SampleSet({k: v[:count] for k, v in self.inputs.items()}, labels, self.origin, self.synthetic)

    def describe(self) -> dict:
        return {"origin": self.origin, "samples": len(self), "synthetic": self.synthetic,
                "labels": self.labels is not None}


def synthetic_samples(specs: list[InputSpec], count: int, seed: int = 0) -> SampleSet:
    """Random inputs, used only when the user gives no data (weak evidence, said so loudly)."""
    per_sample = [example_arrays(specs, 1, seed + i) for i in range(count)]
    stacked = {s.name: np.concatenate([p[s.name] for p in per_sample]) for s in specs}
    return SampleSet(stacked, None, "synthetic (random normal)", synthetic=True)


def load_samples(path: str | Path, specs: list[InputSpec]) -> SampleSet:
    """Load an ``.npz``/``.npy`` file or a folder of them, checked against the model's inputs."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"data file not found: {path}", hint="pass an .npz file or a folder of .npy/.npz files")
    files = sorted(p for p in path.iterdir() if p.suffix in (".npz", ".npy")) if path.is_dir() else [path]
    if not files:
        raise InputError(f"no .npz/.npy files in {path}", hint="put arrays keyed by input name in .npz files")
    parts = [_read_file(f, specs) for f in files]
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
    return SampleSet(inputs, label_array, str(path))


def _read_file(path: Path, specs: list[InputSpec]) -> dict[str, np.ndarray]:
    try:
        if path.suffix == ".npy":
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
        out[LABELS_KEY] = labels
    return out


def _as_samples(arr: np.ndarray, spec: InputSpec, path: Path) -> np.ndarray:
    """Return (N, *model_shape_with_batch_1); the array's first axis is the sample axis. Only numbers are
    accepted, and only finite ones: a NaN in the data would make every accuracy figure meaningless."""
    if arr.dtype.kind not in "biuf":
        raise InputError(f"{path}: '{spec.name}' holds {arr.dtype} values, not numbers",
                         hint=f"save '{spec.name}' as a numeric array ({spec.dtype}) with numpy.savez")
    rank = len(spec.shape)
    if arr.ndim != rank:
        raise InputError(f"{path}: '{spec.name}' has shape {arr.shape}, which does not fit the model input {spec}",
                         hint="stack samples along the first axis: shape (samples, *input_shape[1:])")
    if not _fits(arr.shape[1:], spec.shape[1:]):
        raise InputError(f"{path}: '{spec.name}' samples have shape {arr.shape[1:]}, the model wants {spec}",
                         hint="resize or reshape the data to the model's input shape")
    if arr.dtype.kind == "f":
        bad = ~np.isfinite(arr).all(axis=tuple(range(1, arr.ndim)))
        if bad.any():
            raise InputError(f"{path}: '{spec.name}' holds NaN or inf in {int(bad.sum())} of {len(bad)} samples",
                             hint="drop or repair those samples: accuracy on non-finite inputs means nothing")
    return arr.astype(spec.np_dtype, copy=False)


def _fits(shape: tuple[int, ...], dims: tuple[int | str, ...]) -> bool:
    return len(shape) == len(dims) and all(isinstance(d, str) or d == s for s, d in zip(shape, dims))
