"""The data users have, end to end through the CLI: a folder of real photos with a declared preprocessing, and a
file of sentences with the model's tokenizer; every bad input gives exit 2, a clear message and no folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_transformer import write_sentences, write_tokenizer
from typer.testing import CliRunner

from edgekit.cli import app
from edgekit.data import load_data
from edgekit.data.text import load_sentences
from edgekit.errors import InputError
from edgekit.evaluate.devices import validation_data
from edgekit.manifest import Manifest
from edgekit.specs import InputSpec
from testkit import model_ref

runner = CliRunner()
IMAGENET = "mean=0.485/0.456/0.406,std=0.229/0.224/0.225"
PREPROCESS = f"resize=8,crop=8,{IMAGENET}"
CNN_INPUT = [InputSpec("x", (1, 3, 8, 8))]


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """Twelve crops of scikit-learn's two bundled photos (a temple, a flower), as JPEG and PNG files."""
    from PIL import Image
    from sklearn.datasets import load_sample_images

    folder = tmp_path_factory.mktemp("photos") / "photos"
    folder.mkdir()
    for index in range(12):
        image = load_sample_images().images[index % 2]
        top, left = 40 * (index // 2), 60 * (index // 2)
        crop = Image.fromarray(image[top:top + 160, left:left + 240])
        crop.save(folder / f"photo{index:02d}.{'jpg' if index % 3 else 'png'}")
    return folder


def test_export_calibrates_on_a_folder_of_photos(tmp_path, photos):
    out = tmp_path / "out"
    result = invoke("export", model_ref("tiny_cnn"), "--calib", photos, "--val", photos, "--preprocess", PREPROCESS,
                    "--format", "onnx", "--no-benchmark", "--top1-min", "0.5", "--out", out)
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    data = manifest["data"]["calibration"]
    assert data["samples"] == 12 and not data["synthetic"] and "12 images" in data["origin"]
    assert data["reload"]["preprocess"]["crop"] == 8
    assert manifest["model_kind"]["kind"] == "convolutional"
    assert manifest["int8_recipe"]["onnx"]["precision"] == "int8_static"
    assert [a["name"] for a in manifest["artifacts"]] == ["onnx/fp32", "onnx/int8_static"]
    quantize = manifest["artifacts"][1]["steps"][0]["params"]
    assert quantize["calibration_samples"] == 12 and "photos" in quantize["calibration_data"]


def test_photos_become_the_declared_tensors(photos):
    """The folder gives what the preprocessing declares: NCHW and NHWC hold the same normalized pixels."""
    nchw = load_data(photos, CNN_INPUT, preprocess=PREPROCESS)
    nhwc = load_data(photos, [InputSpec("x", (1, 8, 8, 3))], preprocess=PREPROCESS + ",layout=nhwc")
    assert nchw.inputs["x"].shape == (12, 3, 8, 8) and nchw.inputs["x"].dtype == np.float32
    np.testing.assert_array_equal(nchw.inputs["x"], nhwc.inputs["x"].transpose(0, 3, 1, 2))
    bgr = load_data(photos, CNN_INPUT, preprocess="resize=8,crop=8,channels=bgr")
    plain = load_data(photos, CNN_INPUT, preprocess="resize=8,crop=8")
    np.testing.assert_array_equal(bgr.inputs["x"], plain.inputs["x"][:, ::-1])
    assert 0.0 <= plain.inputs["x"].min() and plain.inputs["x"].max() <= 1.0
    assert abs(float(nchw.inputs["x"].mean())) < 2.0  # mean/std applied: no longer in 0..1


def test_class_folders_give_labels(tmp_path, photos):
    for name in ("cat", "dog"):
        (tmp_path / name).mkdir()
    for index, photo in enumerate(sorted(photos.iterdir())[:6]):
        (tmp_path / ("cat", "dog")[index % 2] / photo.name).write_bytes(photo.read_bytes())
    samples = load_data(tmp_path, CNN_INPUT, preprocess=PREPROCESS)
    assert samples.labels.tolist() == [0, 0, 0, 1, 1, 1] and "2 class folders" in samples.origin


def test_edgekit_toml_declares_photos_and_preprocessing(tmp_path, photos, monkeypatch):
    (tmp_path / "edgekit.toml").write_text(f'model = "{model_ref("tiny_cnn")}"\ncalib = "{photos}"\n'
                                           f'preprocess = "{PREPROCESS}"\nformat = "onnx"\nout = "built"\n')
    monkeypatch.chdir(tmp_path)
    result = invoke("export", "--no-benchmark", "--top1-min", "0.5")
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "built" / "manifest.json").read_text())
    assert "12 images" in manifest["data"]["calibration"]["origin"]


def _bad_folder(tmp_path: Path, photos: Path, what: str) -> Path:
    folder = tmp_path / what
    folder.mkdir()
    good = sorted(photos.glob("*.jpg"))[0]
    if what == "unreadable":
        (folder / "ok.jpg").write_bytes(good.read_bytes())
        (folder / "broken.jpg").write_bytes(good.read_bytes()[:200])  # truncated mid-file
    elif what == "not-an-image":
        (folder / "ok.jpg").write_bytes(good.read_bytes())
        (folder / "notes.txt").write_text("shot on a phone\n")
    elif what == "disguised":
        (folder / "fake.png").write_text("this is not a PNG\n")
    return folder


@pytest.mark.parametrize("what, extra, message", [
    ("unreadable", (), "cannot decode image"),
    ("not-an-image", (), "notes.txt is not an image file"),
    ("disguised", (), "fake.png is not an image Pillow can read"),
    ("empty", (), "no images in"),
    ("layout", ("--preprocess", PREPROCESS + ",layout=nhwc"), "images come out as (8, 8, 3)"),
    ("no-preprocess", ("--preprocess", None), "holds images, but no preprocessing was declared"),
    ("bad-spec", ("--preprocess", "resize=8,crop"), "bad preprocessing item 'crop'"),
])
def test_bad_image_folders_are_refused(tmp_path, photos, what, extra, message):
    folder = photos if what in ("layout", "no-preprocess", "bad-spec") else _bad_folder(tmp_path, photos, what)
    options = ["--preprocess", PREPROCESS]
    if extra:
        options = [] if extra[1] is None else list(extra)
    result = invoke("export", model_ref("tiny_cnn"), "--calib", folder, *options, "--format", "onnx",
                    "--no-benchmark", "--out", tmp_path / "out")
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def test_an_image_folder_cannot_feed_a_two_input_model(photos):
    with pytest.raises(InputError, match="a folder of images feeds one image input"):
        load_data(photos, [InputSpec("a", (1, 6)), InputSpec("b", (1, 6))], preprocess=PREPROCESS)


@pytest.fixture(scope="module")
def sentence_export(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sentences")
    data = {"tokenizer": write_tokenizer(folder / "tok"), "calib": write_sentences(folder / "calib.txt", 12, 3),
            "val": write_sentences(folder / "val.txt", 8, 4)}
    (folder / "fp32.toml").write_text('formats = ["onnx"]\nprecisions = ["fp32"]\nthreads = 1\n')
    result = invoke("export", model_ref("tiny_bert"), "--target", folder / "fp32.toml", "--calib", data["calib"],
                    "--val", data["val"], "--tokenizer", data["tokenizer"], "--output", "output_0:embedding",
                    "--no-benchmark", "--out", folder / "out")
    assert result.exit_code == 0, result.output
    return data, folder / "out"


def test_export_tokenizes_sentences_and_validate_reads_them_again(sentence_export):
    data, out = sentence_export
    manifest = json.loads((out / "manifest.json").read_text())
    assert "8 sentences" in manifest["data"]["validation"]["origin"]
    specs = [InputSpec(i["name"], tuple(i["shape"]), i["dtype"]) for i in manifest["inputs"]]
    again, notes = validation_data(None, Manifest.load(out), out, 100)
    expected = load_sentences(data["val"], data["tokenizer"], specs)
    assert notes == [] and len(again) == 8
    for name in expected.inputs:
        np.testing.assert_array_equal(again.inputs[name], expected.inputs[name])
    given, _ = validation_data(data["calib"], Manifest.load(out), out, 100, tokenizer=data["tokenizer"])
    assert len(given) == 12


@pytest.mark.parametrize("case, message", [
    ("no tokenizer", "sentences need the model's tokenizer"),
    ("image model", "a tokenizer gives input_ids, attention_mask, token_type_ids, but the model takes x"),
    ("another vocabulary", "embedding table has 64 rows: it is another model's tokenizer"),
])
def test_a_tokenizer_that_does_not_fit_is_refused(tmp_path, sentence_export, case, message):
    data, _ = sentence_export
    tokenizer = data["tokenizer"]
    if case == "another vocabulary":  # a larger vocabulary: the words map to ids past the model's 64 rows
        from tokenizers import Tokenizer, models, pre_tokenizers

        words = [f"w{i}" for i in range(100)] + ["the", "cat"]
        big = Tokenizer(models.WordLevel({"[PAD]": 0, "[UNK]": 1, **{w: i + 2 for i, w in enumerate(words)}},
                                         unk_token="[UNK]"))
        big.pre_tokenizer = pre_tokenizers.Whitespace()
        tokenizer = tmp_path / "big"
        tokenizer.mkdir()
        big.save(str(tokenizer / "tokenizer.json"))
    model = model_ref("tiny_cnn" if case == "image model" else "tiny_bert")
    options = [] if case == "no tokenizer" else ["--tokenizer", tokenizer]
    result = invoke("export", model, "--calib", data["calib"], *options, "--format", "onnx", "--no-benchmark",
                    "--out", tmp_path / "out")
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()
