"""Calibration and validation data from a folder of photos, with a declared preprocessing (``images.py``).

``--calib photos/ --preprocess 'resize=256,crop=224,mean=0.485/0.456/0.406,std=0.229/0.224/0.225'``: every image
in the folder becomes one sample of the model's single image input, decoded and preprocessed as declared (resize,
centre crop, scale, mean/std, NCHW or NHWC, RGB/BGR/gray). A folder of class sub-folders (the ImageFolder layout)
also gives ``labels``: the index of each image's folder in the sorted folder names.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from ..errors import InputError
from ..specs import InputSpec
from .images import PreprocessSpec, list_images, list_labeled_images, load_images, parse_preprocess
from .samples import SampleSet, batch_first, cast_to_input, fits


def preprocess_spec(value: str | Path | dict | PreprocessSpec) -> PreprocessSpec:
    """``--preprocess`` text or file, a table from edgekit.toml or a manifest, or a spec already parsed."""
    if isinstance(value, PreprocessSpec):
        return value
    if isinstance(value, dict):
        try:
            return PreprocessSpec.model_validate(value)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'spec'}: {e['msg']}" for e in exc.errors())
            raise InputError(f"invalid preprocessing {value}: {problems}",
                             hint="keys: channels, resize, crop, interpolation, scale, mean, std, layout") from None
    return parse_preprocess(value)


def load_image_folder(path: str | Path, preprocess, specs: list[InputSpec]) -> SampleSet:
    """Every image of ``path`` (flat, or one sub-folder per class) as one sample of the model's image input."""
    path = Path(path)
    spec = _image_input(specs)
    preprocess = preprocess_spec(preprocess)
    if path.is_dir() and any(p.is_dir() and not p.name.startswith(".") for p in path.iterdir()):
        labeled = list_labeled_images(path)
        files, labels = labeled.files, labeled.labels
        described = f"{len(files)} images in {len(labeled.classes)} class folders, labels by sorted folder name"
    else:
        files, labels = list_images(path), None
        described = f"{len(files)} images"
    pixels = load_images(files, preprocess)
    if not fits(pixels.shape[1:], spec.shape[1:]):
        raise InputError(f"{path}: images come out as {pixels.shape[1:]} after preprocessing ({preprocess.layout}, "
                         f"{preprocess.channels}), but input '{spec.name}' takes {list(spec.shape)}",
                         hint="match the input with layout=nchw|nhwc, channels=rgb|bgr|gray, resize=... and crop=...")
    inputs = {spec.name: cast_to_input(pixels, spec, str(path))}
    origin = f"{path} ({described}, preprocess {_compact(preprocess)})"
    return SampleSet(inputs, labels, origin,
                     reload={"path": str(path.resolve()), "preprocess": preprocess.describe()})


def _image_input(specs: list[InputSpec]) -> InputSpec:
    """The model's one image input: an image folder cannot feed several inputs, or a non-batched one."""
    if len(specs) != 1 or not batch_first(specs[0]) or len(specs[0].shape) not in (3, 4):
        raise InputError(f"a folder of images feeds one image input (batch x C x H x W or batch x H x W x C), but the "
                         f"model takes {', '.join(str(s) for s in specs)}",
                         hint="pass .npz data keyed by input name for this model")
    return specs[0]


def _compact(spec: PreprocessSpec) -> str:
    defaults = PreprocessSpec()
    changed = {k: v for k, v in spec.describe().items() if v != defaults.describe()[k]}
    return ",".join(f"{k}={'/'.join(map(str, v)) if isinstance(v, list) else v}" for k, v in changed.items()) or \
        "defaults"
