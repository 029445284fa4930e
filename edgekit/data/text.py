"""Calibration and validation data from a text file of sentences, tokenized by the model's Hugging Face tokenizer.

``--calib sentences.txt --tokenizer DIR``: one sentence per non-empty line; ``DIR`` holds the ``tokenizer.json``
that ships with the model (or is that file). Each sentence becomes one sample of the model's token inputs
(``input_ids``, ``attention_mask``, ``token_type_ids``), truncated and padded to the sequence length the input
spec fixes. The ``tokenizers`` library (Rust, no torch) reads the file; it is imported only here.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..files import regular_file
from ..specs import InputSpec
from .samples import SampleSet

TOKEN_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
TOKENIZER_FILE = "tokenizer.json"


def load_tokenizer(path: str | Path):
    """A ``tokenizers.Tokenizer`` from a folder holding ``tokenizer.json``, or from that file."""
    path = Path(path)
    file = path / TOKENIZER_FILE if path.is_dir() else path
    if not os.path.lexists(file):
        raise InputError(f"no {TOKENIZER_FILE} at {path}",
                         hint="pass --tokenizer with the folder of the model's Hugging Face tokenizer "
                              f"(the one holding {TOKENIZER_FILE})")
    regular_file(file, "tokenizer file")
    try:
        from tokenizers import Tokenizer
    except ImportError as exc:
        raise InputError("reading sentences needs the tokenizers package", hint="pip install tokenizers") from exc
    try:
        return Tokenizer.from_file(str(file))
    except Exception as exc:  # the Rust side raises its own exception types
        raise InputError(f"{file} is not a Hugging Face tokenizer: {str(exc).splitlines()[0]}",
                         hint=f"pass the {TOKENIZER_FILE} saved with the model (tokenizer.save_pretrained)") from exc


def read_sentences(path: Path) -> list[str]:
    """The non-empty lines of a UTF-8 text file."""
    regular_file(path, "sentences file")  # a FIFO would block the export forever
    try:
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    except UnicodeDecodeError as exc:
        raise InputError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})",
                         hint="save the sentences as UTF-8, one per line") from None
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}", hint="check the path") from None
    sentences = [line for line in lines if line]
    if not sentences:
        raise InputError(f"{path} holds no sentences", hint="write one sentence per line")
    return sentences


def sequence_length(specs: list[InputSpec]) -> int:
    """The sequence length the model's token inputs are fixed to (the second axis of ``input_ids``)."""
    ids = next((s for s in specs if s.name == "input_ids"), specs[0])
    if len(ids.shape) != 2:
        raise InputError(f"token input {ids} is not (batch, sequence)", hint="token inputs are 2-D")
    length = ids.shape[1]
    if not isinstance(length, int):
        raise InputError(f"the sequence length of {ids} is dynamic ('{length}'): sentences need a fixed one",
                         hint=f"fix it, e.g. --input {ids.name}:1x128:{ids.dtype}")
    return length


def check_token_inputs(specs: list[InputSpec]) -> None:
    """The model must take token inputs only, or the tokenizer does not fit it."""
    others = [s.name for s in specs if s.name not in TOKEN_INPUTS]
    if others or not any(s.name == "input_ids" for s in specs):
        raise InputError(f"a tokenizer gives {', '.join(TOKEN_INPUTS)}, but the model takes "
                         f"{', '.join(s.name for s in specs)}",
                         hint="--tokenizer is for text models whose inputs are token ids; for other models pass "
                              ".npz data (or an image folder with --preprocess)")


def load_sentences(path: str | Path, tokenizer_path: str | Path, specs: list[InputSpec]) -> SampleSet:
    """Tokenize every sentence of ``path`` into one sample of the model's token inputs."""
    path = Path(path)
    check_token_inputs(specs)
    length = sequence_length(specs)
    tokenizer = load_tokenizer(tokenizer_path)
    sentences = read_sentences(path)
    tokenizer.enable_truncation(max_length=length)
    tokenizer.enable_padding(length=length, pad_id=_pad_id(tokenizer))
    encodings = tokenizer.encode_batch(sentences)
    columns = {"input_ids": [e.ids for e in encodings], "attention_mask": [e.attention_mask for e in encodings],
               "token_type_ids": [e.type_ids for e in encodings]}
    inputs = {s.name: np.asarray(columns[s.name], dtype=s.np_dtype) for s in specs}
    truncated = sum(bool(e.overflowing) for e in encodings)
    origin = f"{path} ({len(sentences)} sentences, tokenizer {Path(tokenizer_path).name}, length {length}"
    origin += f", {truncated} truncated)" if truncated else ")"
    return SampleSet(inputs, None, origin,
                     reload={"path": str(path.resolve()), "tokenizer": str(Path(tokenizer_path).resolve())})


def check_vocabulary(samples: SampleSet, vocabulary_rows: int | None, tokenizer_path: str | Path) -> None:
    """Token ids beyond the model's embedding table mean the tokenizer belongs to another model."""
    ids = samples.inputs.get("input_ids")
    if ids is None or vocabulary_rows is None or not len(ids):
        return
    largest = int(ids.max())
    if largest >= vocabulary_rows:
        raise InputError(f"the tokenizer at {tokenizer_path} produced token id {largest}, but the model's embedding "
                         f"table has {vocabulary_rows} rows: it is another model's tokenizer",
                         hint="pass the tokenizer saved with this model")


def _pad_id(tokenizer) -> int:
    for token in ("[PAD]", "<pad>", "<|pad|>"):
        found = tokenizer.token_to_id(token)
        if found is not None:
            return found
    return 0
