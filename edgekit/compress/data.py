"""Labelled data for training and validation: the ``.npz`` format export reads (with ``labels``), or a folder of
images in one sub-folder per class, decoded with a declared preprocessing (``edgekit.data.images``)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..data import LABELS_KEY, load_samples
from ..data.images import LabeledImages, PreprocessSpec, list_labeled_images, load_image
from ..errors import InputError
from ..files import sha256_file
from ..specs import InputSpec


@dataclass
class LabeledData:
    """A torch ``Dataset`` of (input, label) pairs and where it came from."""

    dataset: Any
    labels: np.ndarray
    origin: str
    sha256: str
    kind: str
    preprocess: dict | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def describe(self) -> dict:
        return {"origin": self.origin, "kind": self.kind, "samples": len(self), "sha256": self.sha256,
                "classes": int(self.labels.max()) + 1, "preprocess": self.preprocess}


class _ImageDataset:
    """Decodes one image per item, so a large folder never has to fit in memory."""

    def __init__(self, images: LabeledImages, spec: PreprocessSpec, dtype: np.dtype):
        self.images, self.spec, self.dtype = images, spec, dtype

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        import torch

        array = load_image(self.images.files[index], self.spec).astype(self.dtype, copy=False)
        return torch.from_numpy(array), torch.tensor(int(self.images.labels[index]))


def load_labeled(path: str | Path, spec: InputSpec, preprocess: PreprocessSpec | None, role: str) -> LabeledData:
    """``path`` for the model input ``spec``: an ``.npz``/``.npy`` file or folder of them, or an image folder."""
    import torch

    path = Path(path)
    if not path.exists():
        raise InputError(f"{role} data not found: {path}", hint="pass an .npz file with 'labels' or an image folder")
    if path.is_dir() and not any(p.suffix in (".npz", ".npy") for p in path.iterdir()):
        return _load_image_folder(path, spec, preprocess, role)
    samples = load_samples(path, [spec])  # checks the keys and the shapes against the model's input
    if samples.labels is None:
        raise InputError(f"{role} data {path} has no '{LABELS_KEY}' array",
                         hint=f"save the class index of every sample as '{LABELS_KEY}' (1-D integers) in the .npz")
    array = samples.inputs[spec.name]
    if array.ndim == len(spec.shape) + 1 and array.shape[1] == 1:  # stored with its own sample axis: (N, 1, …)
        array = array[:, 0]
    inputs = torch.from_numpy(np.ascontiguousarray(array))
    labels = samples.labels.astype(np.int64)
    dataset = torch.utils.data.TensorDataset(inputs, torch.from_numpy(labels))
    return LabeledData(dataset, labels, str(path), _digest(path), "npz")


def _load_image_folder(root: Path, spec: InputSpec, preprocess: PreprocessSpec | None, role: str) -> LabeledData:
    if preprocess is None:
        raise InputError(f"{role} data {root} is an image folder, and images need a declared preprocessing",
                         hint="pass --preprocess, e.g. 'resize=256,crop=224,mean=0.485/0.456/0.406,"
                              "std=0.229/0.224/0.225,layout=nchw,channels=rgb'")
    images = list_labeled_images(root)
    first = load_image(images.files[0], preprocess)
    if len(spec.shape) != first.ndim + 1 or any(isinstance(d, int) and d != s
                                                for d, s in zip(spec.shape[1:], first.shape)):
        raise InputError(f"{images.files[0]} becomes an array of shape {first.shape} after preprocessing, "
                         f"the model input is {spec}",
                         hint="change --preprocess (resize, crop, channels, layout) to give the model's shape")
    dataset = _ImageDataset(images, preprocess, spec.np_dtype)
    return LabeledData(dataset, images.labels, str(root), _digest(root), "images", preprocess.describe())


def check_labels(data: LabeledData, classes: int, role: str) -> None:
    """Every label must be a class the model can output."""
    low, high = int(data.labels.min()), int(data.labels.max())
    if low < 0 or high >= classes:
        raise InputError(f"{role} data {data.origin} has labels {low}..{high}, but the model outputs {classes} "
                         f"classes", hint=f"labels must be class indices 0..{classes - 1}")


def _digest(path: Path) -> str:
    """sha256 of a file; of a folder, over every file's relative path and sha256 (sorted)."""
    if path.is_file():
        return sha256_file(path)
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")):
        digest.update(f"{file.relative_to(path).as_posix()}\0{sha256_file(file)}\n".encode())
    return digest.hexdigest()
