"""``ExportOptions``: one declaration for the CLI, edgekit.toml and ``edgekit.export``, with one precedence
(given > ./edgekit.toml > default), and bad keys or types refused in one line."""

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import typer
from typer.testing import CliRunner

import edgekit
import edgekit.exporter.pipeline as pipeline
from edgekit.cli import app
from edgekit.errors import InputError
from edgekit.exporter.options import ExportOptions, describe, load_project
from testkit import REPO

DIGITS = REPO / "samples" / "digits"
runner = CliRunner()
FIELDS = list(ExportOptions.model_fields)


def samples(folder: Path) -> dict:
    """A value other than the default for every option, as edgekit.toml can hold it (paths absolute)."""
    return {
        "model": f"{folder / 'model.py'}:build", "target": "rpi", "out": str(folder / "built-{target}"),
        "inputs": ["x:1x1x8x8"], "outputs": ["y:class"], "calib": str(folder / "c.npz"),
        "val": str(folder / "v.npz"), "tokenizer": str(folder / "tok"), "preprocess": "resize=8,crop=8",
        "format": "onnx", "dynamic_batch": True, "simplify": False, "cosine_min": 0.5, "top1_min": 0.25,
        "max_abs_error": 0.125, "benchmark": False, "rescue": False, "rescue_budget_s": 5.0, "overwrite": True,
        "agent": "http://127.0.0.1:9", "token_file": str(folder / "token"),
    }


def toml_text(values: dict) -> str:
    return "".join(f"{key} = {json.dumps(value)}\n" for key, value in values.items())


def export_params() -> dict[str, object]:
    command = typer.main.get_command(app).commands["export"]
    return {param.name: param for param in command.params}


def cli_args(values: dict) -> list[str]:
    """``edgekit export`` arguments setting ``values``, spelled by the command's own parameters."""
    params, args = export_params(), []
    for key, value in values.items():
        param = params[key]
        if key == "model":
            args.insert(0, value)
        elif isinstance(value, bool):
            args.append(param.opts[0] if value else param.secondary_opts[0])
        elif isinstance(value, list):
            args += [a for item in value for a in (param.opts[0], item)]
        else:
            args += [param.opts[0], str(value)]
    return args


@pytest.fixture
def fake_pipeline(monkeypatch):
    """``pipeline.export`` replaced by a recorder: what each entry point would run, without running it."""
    calls = []

    def record(model, *, progress=None, token=None, rescue_budget_s=None, **kwargs):
        calls.append({"model": model, "token": token, "rescue_budget_s": rescue_budget_s, **kwargs})
        return SimpleNamespace(manifest={}, out_dir=Path("."))

    monkeypatch.setattr(pipeline, "export", record)
    return calls


def via_cli(*args) -> dict:
    result = runner.invoke(app, ["export", *map(str, args), "--json"])
    assert result.exit_code == 0, result.output
    return result


def test_every_option_is_a_cli_option_with_its_description_as_help():
    params = export_params()
    assert set(FIELDS) <= set(params)
    for name in FIELDS:
        assert params[name].help == describe(name) and describe(name), name
    assert set(samples(Path("/x"))) == set(FIELDS)  # a new option needs a sample value here (and a docs entry)


def test_every_option_is_an_edgekit_toml_key_and_reaches_the_pipeline_the_same_way(tmp_path, monkeypatch,
                                                                                  fake_pipeline):
    values = samples(tmp_path)
    (tmp_path / "project").mkdir()
    (tmp_path / "project" / "edgekit.toml").write_text(toml_text(values))
    loaded, _ = load_project(tmp_path / "project")
    assert loaded.model_fields_set == set(FIELDS)
    assert {name: getattr(loaded, name) for name in FIELDS} == values

    monkeypatch.chdir(tmp_path / "project")
    edgekit.export()  # everything from ./edgekit.toml
    monkeypatch.chdir(tmp_path)
    via_cli(*cli_args(values))  # everything on the command line
    edgekit.export(**values)  # everything as arguments
    from_toml, from_cli, from_api = fake_pipeline
    assert from_toml == from_cli == from_api
    assert from_api["rescue_budget_s"] == 5.0 and from_api["format"] == "onnx" and from_api["simplify"] is False
    assert from_api["accuracy"] == {"cosine_min": 0.5, "top1_agreement_min": 0.25, "max_abs_error": 0.125}


def test_given_beats_edgekit_toml_beats_default_in_cli_and_api_alike(tmp_path, monkeypatch, fake_pipeline):
    (tmp_path / "edgekit.toml").write_text(toml_text({"model": "m.onnx", "target": "rpi", "simplify": False,
                                                      "calib": "data/c.npz"}))
    monkeypatch.chdir(tmp_path)
    via_cli("--target", "mobile", "--simplify", "--top1-min", "0.5")
    edgekit.export(target="mobile", simplify=True, top1_min=0.5)
    edgekit.export(None, "mobile", simplify=True, accuracy={"top1_agreement_min": 0.5})  # the older spellings
    cli, api, older = fake_pipeline
    assert cli == api == older
    assert api["target"] == "mobile" and api["simplify"] is True  # given
    assert api["model"] == str(tmp_path / "m.onnx") and api["calib"] == str(tmp_path / "data" / "c.npz")  # toml
    assert api["benchmark"] is True and api["rescue"] is True and api["rescue_budget_s"] == 60.0  # defaults
    assert api["accuracy"]["top1_agreement_min"] == 0.5 and api["accuracy"]["cosine_min"] is None


def test_paths_in_edgekit_toml_are_relative_to_the_file(tmp_path):
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "edgekit.toml").write_text(toml_text({
        "model": "model.py:build", "calib": "../data/c.npz", "token_file": "token", "target": "boards/pi.toml",
        "preprocess": "pre.json", "out": "out/{model}-{target}"}))
    options, path = load_project(tmp_path / "p")
    base = tmp_path / "p"
    assert path == base / "edgekit.toml"
    assert options.model == f"{base / 'model.py'}:build" and options.calib == str(tmp_path / "data" / "c.npz")
    assert options.token_file == str(base / "token") and options.target == str(base / "boards" / "pi.toml")
    assert options.preprocess == str(base / "pre.json") and options.out == str(base / "out" / "{model}-{target}")


@pytest.mark.parametrize("line, names", [
    ("simplfy = false", ["'simplfy'", "valid keys: model, target,", "rescue_budget_s"]),
    ('simplify = "no"', ["'simplify'", "'no'", "valid boolean"]),
    ("benchmark = 1", ["'benchmark'", "valid boolean"]),
    ("cosine_min = 2.0", ["'cosine_min'", "less than or equal to 1"]),
    ('format = "coreml"', ["'format'", "'onnx', 'tflite', 'openvino', 'executorch', 'auto'"]),
    ('inputs = "x:1x8"', ["'inputs'", "list"]),
    ('calib = "calib\\u0000.npz"', ["'calib'", "NUL character"]),  # the fuzzer's find: a traceback before
])
def test_a_bad_edgekit_toml_is_one_line_and_exit_2_at_the_cli_and_an_input_error_in_the_api(
        tmp_path, monkeypatch, fake_pipeline, line, names):
    (tmp_path / "edgekit.toml").write_text(f'model = "m.onnx"\n{line}\n')
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["export"])
    assert result.exit_code == 2, result.output
    errors = [text for text in result.output.splitlines() if text.startswith("error:")]
    assert len(errors) == 1 and str(tmp_path / "edgekit.toml") in errors[0], result.output
    assert all(name in errors[0] for name in names), errors[0]
    assert "Traceback" not in result.output and "hint:" in result.output
    with pytest.raises(InputError) as raised:
        edgekit.export()
    assert raised.value.message == errors[0].removeprefix("error: ")
    assert fake_pipeline == []


def test_bad_arguments_are_refused_by_name(tmp_path, monkeypatch, fake_pipeline):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError, match=r"unknown key 'simplfy'; valid keys: .*simplify"):
        edgekit.export("m.onnx", simplfy=False)
    with pytest.raises(InputError, match=r"'benchmark' = 'no': Input should be a valid boolean"):
        edgekit.export("m.onnx", benchmark="no")
    with pytest.raises(InputError, match=r"unknown budget 'cosine'"):
        edgekit.export("m.onnx", accuracy={"cosine": 0.9})
    with pytest.raises(InputError, match=r"both given"):
        edgekit.export("m.onnx", cosine_min=0.9, accuracy={"cosine_min": 0.8})
    with pytest.raises(InputError, match="no MODEL given"):
        edgekit.export()
    result = runner.invoke(app, ["export", "m.onnx", "--top1-min", "1.5"])
    assert result.exit_code == 2 and "'top1_min' = 1.5: Input should be less than or equal to 1" in result.output
    assert fake_pipeline == []


def test_the_python_api_honours_edgekit_toml_like_the_cli_on_the_digits_sample(tmp_path, monkeypatch):
    """A real export: edgekit.toml in the working folder sets the target, the folder, no simplify, no latency."""
    (tmp_path / "edgekit.toml").write_text(toml_text({
        "model": f"{DIGITS / 'model.py'}:build", "calib": str(DIGITS / "calib.npz"), "val": str(DIGITS / "val.npz"),
        "target": "rpi", "format": "onnx", "out": "built/{model}-{target}", "simplify": False, "benchmark": False}))
    monkeypatch.chdir(tmp_path)
    result = edgekit.export()
    assert result.out_dir == tmp_path / "built" / "model-rpi"
    manifest = json.loads((result.out_dir / "manifest.json").read_text())
    assert manifest["target"]["name"] == "rpi" and manifest["format"] == "onnx"
    assert "simplify" not in [step["step"] for step in manifest["steps"]]
    assert manifest["artifacts"] and all(art["latency"] is None for art in manifest["artifacts"])
    assert all(art["format"] == "onnx" for art in manifest["artifacts"])
    assert manifest["recommended"] and manifest["status"] == "passed"

    cli = runner.invoke(app, ["export", "--out", "from-cli", "--json"])
    assert cli.exit_code == 0, cli.output
    from_cli = json.loads(cli.stdout)
    assert (tmp_path / "from-cli" / "manifest.json").exists()
    for key in ("target", "format", "status", "recommended"):
        assert from_cli[key] == manifest[key], key
    assert [step["step"] for step in from_cli["steps"]] == [step["step"] for step in manifest["steps"]]
    assert [(a["name"], a["status"], a["latency"]) for a in from_cli["artifacts"]] == [
        (a["name"], a["status"], a["latency"]) for a in manifest["artifacts"]]


def test_docs_export_md_lists_every_key():
    text = (REPO / "docs" / "export.md").read_text()
    section = text[text.index("## `edgekit.toml`"):text.index("## Target profiles")]
    assert [name for name in FIELDS if f"| `{name}` |" not in section] == []
