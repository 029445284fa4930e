"""Image folders as training data: edgekit.data.images (decoding + declared preprocessing) and its errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from compress_fixtures import TEACHER, digits_fixture  # noqa: F401 (fixture)
from PIL import Image
from typer.testing import CliRunner

from edgekit.cli import app
from edgekit.compress.data import load_labeled
from edgekit.data.images import list_images, list_labeled_images, load_image, load_images, parse_preprocess
from edgekit.errors import InputError
from edgekit.specs import InputSpec

GRAY = parse_preprocess("channels=gray")


@pytest.fixture(scope="module")
def digit_folders(digits, tmp_path_factory) -> dict:
    """The digits as 8-bit grayscale PNGs, one sub-folder per class (the ImageFolder layout)."""
    root = tmp_path_factory.mktemp("images")
    out = {}
    for split in ("train", "val"):
        with np.load(digits[split]) as data:
            images, labels = data["image"][:, 0], data["labels"]
        for index, (image, label) in enumerate(zip(images, labels)):
            folder = root / split / f"digit-{label}"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.round(image * 255).astype(np.uint8), mode="L").save(folder / f"{index:04d}.png")
        out[split] = root / split
    return out


def test_image_folder_gives_the_same_samples_as_the_npz(digit_folders, digits):
    data = load_labeled(digit_folders["val"], InputSpec("image", (1, 1, 8, 8)), GRAY, "validation")
    assert data.kind == "images" and len(data) == 360 and data.preprocess["channels"] == "gray"
    with np.load(digits["val"]) as npz:
        expected = {tuple(np.round(x.ravel() * 255)): y for x, y in zip(npz["image"], npz["labels"])}
    for index in range(0, 360, 37):
        array, label = data.dataset[index]
        assert array.shape == (1, 8, 8) and str(array.dtype) == "torch.float32"
        assert expected[tuple(np.round(array.numpy().ravel() * 255))] == int(label)


def test_training_from_image_folders_through_the_cli(digit_folders, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["compress", "prune", TEACHER, "--amount", "0.25", "--train",
                                      str(digit_folders["train"]), "--val", str(digit_folders["val"]),
                                      "--preprocess", "channels=gray", "--epochs", "1", "--threads", "1",
                                      "--no-measure", "--out", "pruned", "--json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.output[result.output.index("{"):])
    assert record["provenance"]["data"]["train"]["kind"] == "images"
    assert record["provenance"]["data"]["train"]["preprocess"]["channels"] == "gray"
    assert record["metrics"]["before"]["val_accuracy"] == pytest.approx(0.9972, abs=0.003)  # same as the .npz
    assert (tmp_path / "pruned" / "model.safetensors").is_file()


def test_an_image_folder_needs_a_declared_preprocessing(digit_folders, tmp_path):
    with pytest.raises(InputError, match="images need a declared preprocessing") as error:
        load_labeled(digit_folders["val"], InputSpec("image", (1, 1, 8, 8)), None, "validation")
    assert "--preprocess" in error.value.hint
    with pytest.raises(InputError, match=r"becomes an array of shape \(3, 8, 8\) after preprocessing"):
        load_labeled(digit_folders["val"], InputSpec("image", (1, 1, 8, 8)), parse_preprocess(""), "validation")


def test_preprocessing_resize_crop_channels_layout(tmp_path):
    pixels = np.zeros((40, 60, 3), np.uint8)
    pixels[..., 0] = 255  # pure red
    pixels[:, :30, 2] = 100
    Image.fromarray(pixels).save(tmp_path / "red.png")
    spec = parse_preprocess("resize=20,crop=16/18,mean=0.5,std=0.5,layout=nhwc")
    array = load_image(tmp_path / "red.png", spec)
    assert array.shape == (16, 18, 3) == spec.output_shape(40, 60)  # shorter side 40 → 20, long side 60 → 30
    assert np.allclose(array[..., 0], 1.0)  # (255/255 - 0.5) / 0.5
    bgr = load_image(tmp_path / "red.png", parse_preprocess("channels=bgr"))
    assert bgr.shape == (3, 40, 60) and np.allclose(bgr[2], 1.0) and np.allclose(bgr[0, :, :30], 100 / 255)
    gray = load_image(tmp_path / "red.png", parse_preprocess("channels=gray,resize=8/8"))
    assert gray.shape == (1, 8, 8)
    spec_file = tmp_path / "prep.toml"
    spec_file.write_text('channels = "rgb"\nresize = [32, 32]\nmean = [0.485, 0.456, 0.406]\n'
                         'std = [0.229, 0.224, 0.225]\n')
    assert load_images([tmp_path / "red.png"] * 2, parse_preprocess(spec_file)).shape == (2, 3, 32, 32)


@pytest.mark.parametrize("text, problem", [
    ("resize=0", "sizes must be positive"), ("mean=0.1/0.2", "mean has 2 values but rgb images have 3"),
    ("colour=rgb", "colour: Extra inputs are not permitted"), ("layout=chw", "layout"),
    ("resize", "bad preprocessing item 'resize'"), ("std=0", "std must not be zero")])
def test_a_malformed_preprocessing_names_the_problem(text, problem):
    with pytest.raises(InputError, match="preprocessing") as error:
        parse_preprocess(text)
    assert problem in error.value.message and "--preprocess" in error.value.hint


def test_bad_image_folders_are_clear_errors(tmp_path):
    good = Image.fromarray(np.zeros((8, 8), np.uint8), mode="L")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="has no class sub-folders"):
        list_labeled_images(tmp_path / "empty")
    with pytest.raises(InputError, match="no images in"):
        list_images(tmp_path / "empty")
    with pytest.raises(InputError, match="image folder not found"):
        list_images(tmp_path / "missing")
    (tmp_path / "tree" / "cat").mkdir(parents=True)
    (tmp_path / "tree" / "dog").mkdir()
    good.save(tmp_path / "tree" / "cat" / "1.png")
    with pytest.raises(InputError, match=r"class folder .*dog holds no images"):
        list_labeled_images(tmp_path / "tree")
    good.save(tmp_path / "tree" / "dog" / "2.png")
    (tmp_path / "tree" / "dog" / ".DS_Store").write_bytes(b"\0\1")  # hidden files are skipped
    assert list_labeled_images(tmp_path / "tree").classes == ["cat", "dog"]
    (tmp_path / "tree" / "dog" / "notes.txt").write_text("not an image")
    with pytest.raises(InputError, match=r"notes\.txt is not an image file"):
        list_labeled_images(tmp_path / "tree")
    (tmp_path / "tree" / "dog" / "notes.txt").unlink()
    noise = np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)
    Image.fromarray(noise, mode="L").save(tmp_path / "noise.png")
    png = (tmp_path / "noise.png").read_bytes()
    (tmp_path / "tree" / "cat" / "broken.png").write_bytes(png[: len(png) * 3 // 5])  # cut in the pixel data
    with pytest.raises(InputError, match=r"cannot decode image .*broken\.png"):
        load_image(tmp_path / "tree" / "cat" / "broken.png", GRAY)
    (tmp_path / "tree" / "cat" / "fake.jpg").write_text("plain text with an image suffix")
    with pytest.raises(InputError, match=r"fake\.jpg is not an image Pillow can read"):
        load_image(tmp_path / "tree" / "cat" / "fake.jpg", GRAY)
