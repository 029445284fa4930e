"""The CLI through Typer's runner: the happy path, --json, targets, edgekit.toml, and every bad input."""

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from typer.testing import CliRunner

from edgekit.cli import app
from testkit import MODELS, REPO, model_ref, smooth_images

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def good_onnx(tmp_path_factory, cnn_data) -> Path:
    out = tmp_path_factory.mktemp("cli") / "good"
    result = invoke("export", model_ref("tiny_cnn"), "--out", out, "--calib", cnn_data["calib"], "--val",
                    cnn_data["val"], "--top1-min", "0.85", "--no-benchmark", "--format", "onnx")
    assert result.exit_code == 0, result.output
    return out / "model.fp32.onnx"


def test_export_prints_table_and_writes_folder(tmp_path, cnn_data):
    out = tmp_path / "cnn"
    result = invoke("export", model_ref("tiny_cnn"), "--target", "x86", "--out", out, "--calib", cnn_data["calib"],
                    "--val", cnn_data["val"], "--top1-min", "0.85", "--format", "onnx")
    assert result.exit_code == 0, result.output
    for text in ("model.fp32.onnx", "onnx/int8_static", "recommended:", "p50 ms", "✓ export to ONNX"):
        assert text in result.output
    assert json.loads((out / "manifest.json").read_text())["status"] == "passed"


def test_export_json_is_the_manifest(tmp_path, cnn_data):
    result = runner.invoke(app, ["export", model_ref("tiny_cnn"), "--out", str(tmp_path / "j"), "--calib",
                                 str(cnn_data["calib"]), "--json", "--no-benchmark", "--top1-min", "0.85",
                                 "--format", "onnx"])
    assert result.exit_code == 0, result.output
    manifest = json.loads(result.stdout)
    assert manifest == json.loads((tmp_path / "j" / "manifest.json").read_text())


def test_accuracy_failure_exits_5_with_figures(tmp_path):
    data = tmp_path / "d.npz"
    np.savez(data, x=smooth_images(8, seed=3))
    result = invoke("export", model_ref("unstable"), "--out", tmp_path / "u", "--calib", data, "--cosine-min",
                    "0.9999", "--no-benchmark", "--format", "onnx", "--no-rescue")
    assert result.exit_code == 5
    assert "onnx/int8_static: accuracy: cosine_min" in result.output and "manifest.json" in result.output


def test_targets_list_and_show():
    listed = invoke("targets", "list")
    assert listed.exit_code == 0 and all(n in listed.output for n in ("x86", "rpi", "mobile"))
    shown = invoke("targets", "show", "rpi", "--json")
    assert shown.exit_code == 0 and json.loads(shown.stdout)["arch"] == "arm64"
    unknown = invoke("targets", "show", "nope")
    assert unknown.exit_code == 3 and "valid targets: mobile, rpi, x86" in unknown.output


def test_edgekit_toml_supplies_the_model(tmp_path, monkeypatch, cnn_data):
    (tmp_path / "edgekit.toml").write_text(
        f'model = "{MODELS}:tiny_cnn"\ncalib = "{cnn_data["calib"]}"\nout = "built"\n')
    monkeypatch.chdir(tmp_path)
    result = invoke("export", "--target", "x86", "--no-benchmark", "--top1-min", "0.85", "--format", "onnx")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "built" / "manifest.json").exists()
    override = invoke("export", "--target", "rpi", "--out", "other", "--no-benchmark", "--top1-min", "0.85",
                      "--format", "onnx")
    assert override.exit_code == 0 and json.loads((tmp_path / "other" / "manifest.json").read_text())[
        "target"]["name"] == "rpi"


def test_sample_project_file_works_as_typed(tmp_path, monkeypatch):
    """`cd samples/digits && edgekit export --target x86` resolves paths from the sample's edgekit.toml."""
    monkeypatch.chdir(REPO / "samples" / "digits")
    result = invoke("export", "--target", "x86", "--out", tmp_path / "digits", "--no-benchmark")
    assert result.exit_code == 0, result.output
    assert "360 validation samples" in result.output


def test_unknown_format_lists_the_choices(good_onnx):
    result = invoke("export", good_onnx, "--format", "coreml")
    assert result.exit_code == 2 and "'onnx', 'tflite', 'openvino', 'executorch', 'auto'" in result.output


def _truncated(good: Path, tmp: Path) -> Path:
    path = tmp / "half.onnx"
    path.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    return path


def _garbage(tmp: Path, suffix: str = ".onnx") -> Path:
    path = tmp / f"garbage{suffix}"
    path.write_bytes(np.random.default_rng(0).bytes(512))
    return path


def _profile(tmp: Path, text: str = 'precisions = ["fp32"]\nthreads = "many"\n') -> Path:
    path = tmp / "bad.toml"
    path.write_text(text)
    return path


def _syntax_error(tmp: Path) -> Path:
    path = tmp / "broken.py"
    path.write_text("def build(:\n    pass\n")
    return path


def _with_nan(array: np.ndarray) -> np.ndarray:
    array[1, 0, 0, 0] = np.nan
    return array


def _calib(tmp: Path, **arrays) -> Path:
    path = tmp / "calib.npz"
    np.savez(path, **arrays)
    return path


def _symbolic_sizes(tmp: Path, model: Path) -> Path:
    """``model`` with its input's height and width made symbolic, as published detectors ship."""
    graph = onnx.load(str(model))
    for dim, symbol in zip(graph.graph.input[0].type.tensor_type.shape.dim[2:], ("height", "width")):
        dim.dim_param = symbol
    path = tmp / "symbolic.onnx"
    onnx.save(graph, str(path))
    return path


def _not_writable_out(tmp: Path) -> Path:
    blocker = tmp / "a-file"
    blocker.write_text("x")
    return blocker / "out"


BAD_INPUTS = {
    "missing model file": (lambda t, g: ["export", t / "nope.py:build"], 2, "model file not found"),
    "missing onnx file": (lambda t, g: ["export", t / "nope.onnx"], 2, "model file not found"),
    "factory name missing": (lambda t, g: ["export", f"{MODELS}:no_such"], 2, "'no_such' not found"),
    "factory raises": (lambda t, g: ["export", model_ref("raises")], 2, "weights file is corrupt"),
    "syntax error in model file": (lambda t, g: ["export", f"{_syntax_error(t)}:build"], 2, "SyntaxError"),
    "not a module": (lambda t, g: ["export", model_ref("not_a_module")], 2, "not a torch.nn.Module"),
    "no shapes": (lambda t, g: ["export", model_ref("tiny_cnn_no_examples")], 2, "no input shapes"),
    "pickle file": (lambda t, g: ["export", t / "model.pt"], 2, "never loaded"),
    "garbage onnx": (lambda t, g: ["export", _garbage(t)], 2, "not a valid ONNX model"),
    "garbage tflite": (lambda t, g: ["export", _garbage(t, ".tflite")], 2, "not a loadable TFLite model"),
    "truncated onnx": (lambda t, g: ["export", _truncated(g, t)], 2, "not a valid ONNX model"),
    "spec mismatch torch": (lambda t, g: ["export", model_ref("tiny_cnn"), "--input", "x:1x5"], 2,
                            "the model rejects inputs"),
    "spec mismatch onnx name": (lambda t, g: ["export", g, "--input", "image:1x3x8x8"], 2, "do not match the model"),
    "spec mismatch onnx shape": (lambda t, g: ["export", g, "--input", "x:1x3x9x8"], 2, "does not match the model"),
    "bad spec syntax": (lambda t, g: ["export", g, "--input", "x=1,3"], 2, "bad input spec"),
    "unknown target": (lambda t, g: ["export", g, "--target", "pi5"], 3, "valid targets: mobile, rpi, x86"),
    "malformed profile": (lambda t, g: ["export", g, "--target", _profile(t)], 3, "field 'threads'"),
    "unsupported op": (lambda t, g: ["export", model_ref("unsupported_op")], 4, "edgekit_test::mystery"),
    "calib wrong keys": (lambda t, g: ["export", g, "--calib", _calib(t, image=np.zeros((2, 3, 8, 8), np.float32))],
                         2, "do not match the model inputs"),
    "calib wrong shape": (lambda t, g: ["export", g, "--calib", _calib(t, x=np.zeros((2, 3, 4, 4), np.float32))],
                          2, "the model wants"),
    "out not writable": (lambda t, g: ["export", g, "--out", _not_writable_out(t)], 2,
                         "cannot create the output folder"),
    "out in /proc": (lambda t, g: ["export", g, "--out", "/proc/edgekit-out"], 2,
                     "cannot create the output folder /proc/edgekit-out"),
    "out placeholder unknown": (lambda t, g: ["export", g, "--out", "o/{modle}-{target}"], 2,
                                "has a placeholder edgekit cannot fill"),
    "calib strings": (lambda t, g: ["export", g, "--calib", _calib(t, x=np.array([["a"] * 192] * 2).reshape(
        2, 3, 8, 8))], 2, "'x' holds <U1 values, not numbers"),
    "calib NaN": (lambda t, g: ["export", g, "--calib", _calib(t, x=_with_nan(np.zeros((4, 3, 8, 8), np.float32)))],
                  2, "'x' holds NaN or inf in 1 of 4 samples"),
    "val inf": (lambda t, g: ["export", g, "--val", _calib(t, x=np.full((2, 3, 8, 8), np.inf, np.float32))], 2,
                "'x' holds NaN or inf in 2 of 2 samples"),
    "repeated precision": (lambda t, g: ["export", g, "--target", _profile(t, 'precisions = ["fp32", "fp32"]\n')],
                           3, "lists fp32 more than once"),
    "dynamic batch to tflite": (lambda t, g: ["export", g, "--format", "tflite", "--dynamic-batch"], 2,
                                "TFLite export needs static shapes"),
    "symbolic sizes to tflite": (lambda t, g: ["export", _symbolic_sizes(t, g), "--format", "tflite"], 2,
                                 "has symbolic sizes besides the batch: give them, e.g. --input x:1x3xNxN"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_one_clear_line_and_nothing_written(case, tmp_path, good_onnx, monkeypatch):
    make_args, code, message = BAD_INPUTS[case]
    (tmp_path / "model.pt").write_bytes(b"\x80\x04pickle")
    monkeypatch.chdir(tmp_path)
    args = make_args(tmp_path, good_onnx)
    before = sorted(p.name for p in tmp_path.iterdir())
    result = invoke(*args, "--no-benchmark")
    assert result.exit_code == code, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    error_lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and "hint:" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == before, "nothing may be written on bad input"
