"""Image files as model inputs: a declared preprocessing and the decoding of folders of photos (torch-free).

Shared by training (``edgekit compress --train photos/``) and calibration from photos. Pillow is imported only
when an image is decoded; the error without it names the extra to install.

API:

- ``PreprocessSpec``: what is done to every image, in this order: convert to ``channels`` (``rgb``, ``bgr`` or
  ``gray``), ``resize`` (one int: the shorter side, keeping the aspect ratio, as torchvision's ``Resize(256)``; or
  ``[height, width]``: exactly), ``crop`` (a centre crop, int or ``[height, width]``), scale the pixels by
  ``scale`` (default 1/255, so 0..1), subtract ``mean`` and divide by ``std`` (one value, or one per channel),
  lay out as ``nchw`` (``(C, H, W)`` per image) or ``nhwc``. pydantic, ``extra="forbid"``.
- ``parse_preprocess(text)``: a spec from ``"resize=256,crop=224,mean=0.485/0.456/0.406,std=0.229/0.224/0.225"``
  (``key=value`` pairs; lists with ``/``) or from the path of a ``.json`` or ``.toml`` file holding the same keys.
- ``list_images(folder)``: the image files of a flat folder, sorted (calibration photos, no labels).
- ``list_labeled_images(root)``: ``LabeledImages`` from one sub-folder per class (the ImageFolder convention:
  classes are the sub-folder names, sorted; label = index in that list).
- ``load_image(path, spec)``: one image as a float32 array, ``(C, H, W)`` or ``(H, W, C)``.
- ``load_images(paths, spec)``: those stacked along a new first (sample) axis.

Every problem is an ``InputError`` naming the file: a missing or empty folder, a file that is not an image, an
image that cannot be decoded, a class folder with no images. Hidden files (``.DS_Store``) are skipped.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..errors import InputError
from ..extras import install_hint
from ..files import existing_folder, regular_file

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"})
_LIST_KEYS = ("resize", "crop", "mean", "std")
MAX_PIXELS = 64_000_000  # a 8000x8000 photo; far beyond any model input, well short of a decompression bomb
_PREPROCESS_HINT = ("declare it as e.g. --preprocess 'resize=256,crop=224,mean=0.485/0.456/0.406,"
                    "std=0.229/0.224/0.225,layout=nchw,channels=rgb' (or a .json/.toml file with those keys)")


class PreprocessSpec(BaseModel):
    """What is done to every image before it reaches the model (see the module docstring for the order)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    channels: Literal["rgb", "bgr", "gray"] = "rgb"
    resize: tuple[int, int] | int | None = None
    crop: tuple[int, int] | int | None = None
    interpolation: Literal["bilinear", "bicubic", "nearest"] = "bilinear"
    scale: float = Field(1 / 255, gt=0)
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    layout: Literal["nchw", "nhwc"] = "nchw"

    @field_validator("resize", "crop")
    @classmethod
    def _positive(cls, value):
        sizes = value if isinstance(value, tuple) else (value,) if value is not None else ()
        if any(size <= 0 for size in sizes):
            raise ValueError("sizes must be positive")
        return value

    @field_validator("std")
    @classmethod
    def _nonzero_std(cls, value):
        if any(v == 0 for v in value):
            raise ValueError("std must not be zero")
        return value

    @model_validator(mode="after")
    def _per_channel_lengths(self) -> PreprocessSpec:
        for name in ("mean", "std"):
            length = len(getattr(self, name))
            if length not in (1, self.channel_count):
                raise ValueError(f"{name} has {length} values but {self.channels} images have "
                                 f"{self.channel_count} channel(s)")
        return self

    @property
    def channel_count(self) -> int:
        return 1 if self.channels == "gray" else 3

    def output_shape(self, height: int, width: int) -> tuple[int, int, int]:
        """The array shape an image of ``height`` x ``width`` pixels becomes."""
        height, width = self._resized(height, width)
        if self.crop is not None:
            height, width = _pair(self.crop)
        return (self.channel_count, height, width) if self.layout == "nchw" else (height, width, self.channel_count)

    def describe(self) -> dict:
        return self.model_dump(mode="json")

    def _resized(self, height: int, width: int) -> tuple[int, int]:
        if self.resize is None:
            return height, width
        if isinstance(self.resize, tuple):
            return self.resize
        short, long = (height, width) if height <= width else (width, height)
        scaled = int(self.resize * long / short)
        return (self.resize, scaled) if height <= width else (scaled, self.resize)


@dataclass(frozen=True)
class LabeledImages:
    """Image files with class labels from an ImageFolder-style tree."""

    root: Path
    files: list[Path]
    labels: np.ndarray
    classes: list[str]

    def __len__(self) -> int:
        return len(self.files)


def parse_preprocess(text: str | Path) -> PreprocessSpec:
    """A ``PreprocessSpec`` from ``key=value,...`` text or from a ``.json``/``.toml`` file."""
    path = Path(text)
    suffix = path.suffix.lower()
    if suffix in (".json", ".toml"):
        regular_file(path, "preprocessing file")
        try:
            text = path.read_text(encoding="utf-8")
            raw = json.loads(text) if suffix == ".json" else tomllib.loads(text)
        except UnicodeDecodeError as exc:
            raise InputError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})",
                             hint="save the preprocessing file as UTF-8") from None
        except (ValueError, RecursionError, tomllib.TOMLDecodeError) as exc:
            raise InputError(f"{path}: cannot read the preprocessing: {exc}", hint=_PREPROCESS_HINT) from exc
        return _validated(raw, str(path))
    raw: dict[str, object] = {}
    for item in filter(None, (part.strip() for part in str(text).split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise InputError(f"bad preprocessing item '{item}' in '{text}'", hint=_PREPROCESS_HINT)
        key, value = key.strip(), value.strip()
        raw[key] = [v for v in value.split("/")] if key in _LIST_KEYS else value
        if key in ("resize", "crop") and len(raw[key]) == 1:
            raw[key] = raw[key][0]
    return _validated(raw, f"'{text}'")


def _validated(raw: dict, where: str) -> PreprocessSpec:
    try:
        return PreprocessSpec.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc']) or 'spec'}: {err['msg']}" for err in exc.errors())
        raise InputError(f"invalid preprocessing {where}: {problems}", hint=_PREPROCESS_HINT) from exc


def list_images(folder: str | Path) -> list[Path]:
    """Every image file directly in ``folder``, sorted; anything else there is an error."""
    folder = _existing_folder(folder)
    files = _image_files(folder)
    if not files:
        raise InputError(f"no images in {folder}", hint="put .png/.jpg files in the folder")
    return files


def list_labeled_images(root: str | Path) -> LabeledImages:
    """One sub-folder per class (sorted names = labels 0..K-1), every file in it an image."""
    root = _existing_folder(root)
    loose = [p for p in root.iterdir() if p.is_file() and not p.name.startswith(".")]
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        held = f" (it holds {len(loose)} loose file(s))" if loose else ""
        raise InputError(f"{root} has no class sub-folders{held}",
                         hint="use one sub-folder per class: ROOT/cat/1.jpg, ROOT/dog/2.jpg (the ImageFolder layout)")
    if loose:
        raise InputError(f"{root} holds files next to its class folders: {', '.join(p.name for p in loose[:3])}",
                         hint="move every image into the sub-folder of its class")
    files: list[Path] = []
    labels: list[int] = []
    for index, name in enumerate(classes):
        members = _image_files(root / name)
        if not members:
            raise InputError(f"class folder {root / name} holds no images", hint="add images or remove the folder")
        files += members
        labels += [index] * len(members)
    return LabeledImages(root, files, np.asarray(labels, dtype=np.int64), classes)


def load_image(path: str | Path, spec: PreprocessSpec) -> np.ndarray:
    """Decode one image file and apply ``spec``: float32, ``(C, H, W)`` or ``(H, W, C)``."""
    image = _decode(Path(path), spec)
    if spec.resize is not None:
        height, width = spec._resized(image.height, image.width)
        image = image.resize((width, height), _resample(spec.interpolation))
    if spec.crop is not None:
        height, width = _pair(spec.crop)
        if height > image.height or width > image.width:
            raise InputError(f"{path}: a {height}x{width} crop does not fit the {image.height}x{image.width} image",
                             hint="resize to at least the crop size first (resize=...)")
        top, left = (image.height - height) // 2, (image.width - width) // 2
        image = image.crop((left, top, left + width, top + height))
    pixels = np.asarray(image, dtype=np.float32)
    pixels = pixels[:, :, None] if pixels.ndim == 2 else pixels[:, :, ::-1] if spec.channels == "bgr" else pixels
    pixels = (pixels * spec.scale - np.asarray(spec.mean, np.float32)) / np.asarray(spec.std, np.float32)
    return np.ascontiguousarray(pixels.transpose(2, 0, 1) if spec.layout == "nchw" else pixels, dtype=np.float32)


def load_images(paths: list[Path], spec: PreprocessSpec) -> np.ndarray:
    """Several images stacked along a new first axis; they must all come out the same shape."""
    arrays = [load_image(p, spec) for p in paths]
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise InputError(f"images come out in different shapes {sorted(shapes)} after preprocessing",
                         hint="add resize=... and/or crop=... so every image gets the same size")
    return np.stack(arrays)


def _decode(path: Path, spec: PreprocessSpec):
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError as exc:
        raise InputError("reading images needs Pillow", hint=install_hint("compress")) from exc
    regular_file(path, "image file")
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS  # Pillow raises DecompressionBombError above twice this
    try:
        with Image.open(path) as opened:
            if opened.width * opened.height > MAX_PIXELS:
                raise InputError(f"image {path} is {opened.width}x{opened.height} pixels, more than edgekit decodes "
                                 f"({MAX_PIXELS // 1_000_000} million): a decompression bomb or a scan far larger "
                                 "than any model input", hint="downscale it, or remove it from the folder")
            opened.load()
            image = opened.convert("L" if spec.channels == "gray" else "RGB")
    except Image.DecompressionBombError as exc:
        raise InputError(f"image {path} is too large to decode safely ({exc})",
                         hint="downscale it, or remove it from the folder") from None
    except UnidentifiedImageError as exc:
        raise InputError(f"{path} is not an image Pillow can read", hint="remove it or convert it to PNG/JPEG") from exc
    except (OSError, ValueError, SyntaxError) as exc:  # truncated or damaged files
        raise InputError(f"cannot decode image {path}: {exc}", hint="the file may be truncated; replace it") from exc
    return image


def _existing_folder(folder: str | Path) -> Path:
    return existing_folder(folder, "image folder")


def _image_files(folder: Path) -> list[Path]:
    entries = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    others = [p for p in entries if p.is_dir() or p.suffix.lower() not in IMAGE_SUFFIXES]
    if others:
        raise InputError(f"{others[0]} is not an image file (known suffixes: {', '.join(sorted(IMAGE_SUFFIXES))})",
                         hint="keep only images in the folder")
    return entries


def _pair(size: tuple[int, int] | int) -> tuple[int, int]:
    return size if isinstance(size, tuple) else (size, size)


def _resample(name: str):
    from PIL import Image

    return {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC,
            "nearest": Image.Resampling.NEAREST}[name]
