"""``load_data``: calibration or validation data in whichever form the user has, told apart by the path."""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError
from ..specs import InputSpec
from .images import IMAGE_SUFFIXES
from .samples import SampleSet, load_samples


def load_data(path: str | Path, specs: list[InputSpec], *, tokenizer: str | Path | None = None,
              preprocess=None) -> SampleSet:
    """Data in any form edgekit reads, told apart by what ``path`` is: a folder of images (with ``preprocess``),
    a ``.txt`` file of sentences (with ``tokenizer``, the model's ``tokenizer.json`` or its folder), or
    ``.npz``/``.npy`` arrays (a file or a folder of them)."""
    path = Path(path)
    if path.suffix.lower() == ".txt":
        if tokenizer is None:
            raise InputError(f"{path} is a text file: sentences need the model's tokenizer",
                             hint="pass --tokenizer DIR (the folder holding the model's tokenizer.json)")
        from .text import load_sentences

        return load_sentences(path, tokenizer, specs)
    if path.is_dir() and preprocess is not None:
        from .image_samples import load_image_folder

        return load_image_folder(path, preprocess, specs)
    if path.is_dir() and any(p.suffix.lower() in IMAGE_SUFFIXES for p in path.rglob("*")):
        raise InputError(f"{path} holds images, but no preprocessing was declared for them",
                         hint="pass --preprocess 'resize=256,crop=224,mean=0.485/0.456/0.406,std=0.229/0.224/0.225'"
                              " (or preprocess = \"...\" in edgekit.toml)")
    return load_samples(path, specs)
