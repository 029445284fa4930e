"""Sentences as calibration data: a real Hugging Face tokenizer (built in the test), padded and truncated to the
model's fixed sequence length, and clear errors for a tokenizer or a file that does not fit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgekit.data import SampleSet
from edgekit.data.text import check_vocabulary, load_sentences
from edgekit.errors import InputError
from edgekit.specs import InputSpec

SPECS = [InputSpec("input_ids", (1, 8), "int64"), InputSpec("attention_mask", (1, 8), "int64")]


@pytest.fixture
def tokenizer(tmp_path) -> Path:
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocabulary = {"[PAD]": 0, "[UNK]": 1, "the": 2, "cat": 3, "sat": 4, "on": 5, "mat": 6, "a": 7}
    built = Tokenizer(models.WordLevel(vocabulary, unk_token="[UNK]"))
    built.pre_tokenizer = pre_tokenizers.Whitespace()
    folder = tmp_path / "tok"
    folder.mkdir()
    built.save(str(folder / "tokenizer.json"))
    return folder


def test_each_line_becomes_one_padded_sample(tmp_path, tokenizer):
    text = tmp_path / "s.txt"
    text.write_text("the cat sat\n\n  a mat on the mat the cat sat on \n")
    samples = load_sentences(text, tokenizer, SPECS)
    assert len(samples) == 2 and samples.inputs["input_ids"].dtype == np.int64
    assert samples.inputs["input_ids"][0].tolist() == [2, 3, 4, 0, 0, 0, 0, 0]
    assert samples.inputs["attention_mask"][0].tolist() == [1, 1, 1, 0, 0, 0, 0, 0]
    assert samples.inputs["input_ids"][1].tolist() == [7, 6, 5, 2, 6, 2, 3, 4]  # truncated to 8
    assert "2 sentences" in samples.origin and "1 truncated" in samples.origin
    assert [s["input_ids"].shape for s in samples] == [(1, 8), (1, 8)]


@pytest.mark.parametrize("specs, message", [
    ([InputSpec("image", (1, 3, 8, 8))], "but the model takes image"),
    ([InputSpec("input_ids", (1, "sequence"), "int64")], r"is dynamic \('sequence'\)"),
])
def test_a_tokenizer_that_does_not_fit_the_model_is_refused(tmp_path, tokenizer, specs, message):
    text = tmp_path / "s.txt"
    text.write_text("the cat\n")
    with pytest.raises(InputError, match=message):
        load_sentences(text, tokenizer, specs)


def test_token_ids_beyond_the_embedding_table_name_another_model():
    samples = SampleSet({"input_ids": np.array([[2, 30522]])}, None, "s.txt")
    with pytest.raises(InputError, match="token id 30522, but the model's embedding table has 1000 rows"):
        check_vocabulary(samples, 1000, "tok")


@pytest.mark.parametrize("content, message", [(b"", "holds no sentences"), (b"\n \n", "holds no sentences"),
                                              (b"\xff\xfe caf\xe9", "is not UTF-8 text")])
def test_bad_sentence_files(tmp_path, tokenizer, content, message):
    text = tmp_path / "s.txt"
    text.write_bytes(content)
    with pytest.raises(InputError, match=message):
        load_sentences(text, tokenizer, SPECS)


def test_a_folder_without_tokenizer_json_and_a_file_that_is_not_one(tmp_path):
    text = tmp_path / "s.txt"
    text.write_text("the cat\n")
    with pytest.raises(InputError, match="no tokenizer.json at"):
        load_sentences(text, tmp_path, SPECS)
    (tmp_path / "tokenizer.json").write_text("{}")
    with pytest.raises(InputError, match="is not a Hugging Face tokenizer"):
        load_sentences(text, tmp_path, SPECS)
