from pathlib import Path

import pytest

from edgekit.errors import TargetError
from edgekit.targets import Precision, builtin_target_files, load_target


def test_builtin_profiles_load_and_differ():
    names = builtin_target_files()
    assert {"x86", "rpi", "mobile"} <= set(names)
    x86, rpi, mobile = (load_target(n) for n in ("x86", "rpi", "mobile"))
    assert x86.arch == "x86_64" and rpi.arch == "arm64"
    assert x86.quantization.activation_type == "uint8" and x86.quantization.weight_type == "int8"
    assert Precision.int8 in x86.precisions and Precision.int8 in rpi.precisions and Precision.int8 in mobile.precisions
    assert Precision.fp16 in mobile.precisions
    assert x86.threads == 2 and rpi.threads == 4


def test_unknown_target_lists_valid_ones():
    with pytest.raises(TargetError) as info:
        load_target("jetson-nano")
    assert "unknown target 'jetson-nano'" in str(info.value)
    for name in ("mobile", "rpi", "x86"):
        assert name in str(info.value)


def test_user_profile_from_path(tmp_path: Path):
    path = tmp_path / "mybox.toml"
    path.write_text('precisions = ["fp32", "int8_dynamic"]\nthreads = 3\n[accuracy]\ncosine_min = 0.9\n')
    profile = load_target(str(path))
    assert profile.name == "mybox" and profile.threads == 3
    assert profile.precisions == [Precision.fp32, Precision.int8_dynamic]
    assert profile.accuracy.cosine_min == 0.9


@pytest.mark.parametrize("body, field", [
    ('precisions = ["fp32"]\nthreds = 2\n', "threds"),
    ('precisions = ["fp64"]\n', "precisions.0"),
    ('precisions = ["fp32"]\n[quantization]\ncalibration = "median"\n', "quantization.calibration"),
    ('precisions = []\n', "precisions"),
    ('precisions = ["fp32"]\nthreads = 0\n', "threads"),
])
def test_malformed_profile_names_file_and_field(tmp_path: Path, body: str, field: str):
    path = tmp_path / "bad.toml"
    path.write_text(body)
    with pytest.raises(TargetError) as info:
        load_target(str(path))
    message = str(info.value)
    assert str(path) in message and f"field '{field}'" in message


def test_profile_that_is_not_toml(tmp_path: Path):
    path = tmp_path / "broken.toml"
    path.write_text("precisions = [fp32\n")
    with pytest.raises(TargetError, match="not valid TOML"):
        load_target(str(path))


def test_missing_profile_file(tmp_path: Path):
    with pytest.raises(TargetError, match="not found"):
        load_target(str(tmp_path / "nope.toml"))


def test_accuracy_override_keeps_other_fields():
    profile = load_target("x86").with_accuracy(cosine_min=0.5, top1_agreement_min=None)
    assert profile.accuracy.cosine_min == 0.5
    assert profile.accuracy.top1_agreement_min == load_target("x86").accuracy.top1_agreement_min
