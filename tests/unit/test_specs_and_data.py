from pathlib import Path

import numpy as np
import pytest

from edgekit.data import load_samples, synthetic_samples
from edgekit.errors import InputError
from edgekit.specs import InputSpec, parse_input_spec

IMAGE = InputSpec("x", (1, 3, 8, 8))


def test_parse_input_spec():
    spec = parse_input_spec("image:1x3x224x224")
    assert spec == InputSpec("image", (1, 3, 224, 224), "float32")
    dynamic = parse_input_spec("ids:batchx128:int64")
    assert dynamic.shape == ("batch", 128) and dynamic.dtype == "int64"
    assert dynamic.concrete_shape(4) == (4, 128)
    assert parse_input_spec("x:2x3").with_dynamic_batch().shape == ("batch", 3)


@pytest.mark.parametrize("text", ["image", "image:", ":1x3", "x:1x0x3", "x:1x3:float128", "x:1x-3", "a:b:c:d"])
def test_bad_input_specs(text):
    with pytest.raises(InputError, match="bad|unknown dtype"):
        parse_input_spec(text)


def test_npz_samples_and_labels(tmp_path: Path):
    np.savez(tmp_path / "d.npz", x=np.ones((5, 3, 8, 8), np.float32), labels=np.arange(5))
    samples = load_samples(tmp_path / "d.npz", [IMAGE])
    assert len(samples) == 5 and samples.labels.tolist() == [0, 1, 2, 3, 4]
    first = next(iter(samples))
    assert first["x"].shape == (1, 3, 8, 8)


def test_folder_of_files_is_concatenated(tmp_path: Path):
    np.save(tmp_path / "a.npy", np.zeros((2, 3, 8, 8), np.float32))
    np.save(tmp_path / "b.npy", np.ones((3, 3, 8, 8), np.float32))
    samples = load_samples(tmp_path, [IMAGE])
    assert len(samples) == 5 and samples.inputs["x"][-1].mean() == 1.0


def test_dynamic_dims_accept_any_size(tmp_path: Path):
    np.savez(tmp_path / "d.npz", ids=np.zeros((4, 17), np.int64))
    samples = load_samples(tmp_path / "d.npz", [InputSpec("ids", ("batch", "seq"), "int64")])
    assert next(iter(samples))["ids"].shape == (1, 17)


@pytest.mark.parametrize("arrays, message", [
    ({"image": np.zeros((2, 3, 8, 8), np.float32)}, "do not match the model inputs"),
    ({"x": np.zeros((2, 3, 8, 8)), "extra": np.zeros(2)}, "unexpected"),
    ({"x": np.zeros((2, 3, 9, 8), np.float32)}, "the model wants"),
    ({"x": np.zeros((3, 8, 8), np.float32)}, "does not fit"),
    ({"x": np.zeros((2, 3, 8, 8), np.float32), "labels": np.zeros(3, np.int64)}, "3 labels for 2 samples"),
    ({"x": np.zeros((2, 3, 8, 8), np.float32), "labels": np.zeros(2, np.float32)}, "integer"),
])
def test_calibration_file_with_wrong_keys_or_shapes(tmp_path: Path, arrays, message):
    np.savez(tmp_path / "d.npz", **arrays)
    with pytest.raises(InputError, match=message):
        load_samples(tmp_path / "d.npz", [IMAGE])


def test_missing_and_corrupt_data_files(tmp_path: Path):
    with pytest.raises(InputError, match="not found"):
        load_samples(tmp_path / "none.npz", [IMAGE])
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(InputError, match="cannot read"):
        load_samples(tmp_path / "bad.npz", [IMAGE])


def test_pickled_arrays_are_refused(tmp_path: Path):
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(InputError, match="cannot read"):
        load_samples(tmp_path / "obj.npy", [IMAGE])


def test_synthetic_samples_are_marked():
    samples = synthetic_samples([IMAGE], 4)
    assert samples.synthetic and len(samples) == 4 and samples.describe(Path("."))["synthetic"] is True
