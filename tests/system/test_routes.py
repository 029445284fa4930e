"""The routes design: a format is one declared route. A fourth route added in one file (a plugin) is built,
gated, timed, stored by a real agent and validated on it; ``--plan`` shows every bundled profile's candidates and
steps without building; ``auto`` is a mode, not a format."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from edgekit.errors import TargetError
from edgekit.exporter.pipeline import export
from edgekit.exporter.plan import plan_export
from edgekit.runtime.openvino import cpu_capabilities
from edgekit.targets import builtin_target_files, load_target
from testkit import REPO
from testkit.agent_process import start_agent

PLUGIN = "tests.system.plugins.gzip_route"
DIGITS = str(REPO / "samples" / "digits" / "model.py") + ":build"
DATA = {"calib": REPO / "samples" / "digits" / "calib.npz", "val": REPO / "samples" / "digits" / "val.npz"}


def _edgekit(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgekit.cli", *args], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, **env}, timeout=600)


def test_a_fourth_route_in_one_file_is_built_gated_timed_stored_and_validated():
    """The plugin is named only in ``EDGEKIT_PLUGINS``: the export, the agent and its worker children load it (so
    does the manifest's round trip; this process, without the plugin, keeps out of its folder)."""
    with tempfile.TemporaryDirectory(prefix="edgekit-plugin-") as scratch:
        _fourth_route(Path(scratch), {"EDGEKIT_PLUGINS": PLUGIN})


def _fourth_route(tmp_path: Path, env: dict) -> None:
    profile = tmp_path / "gz.toml"
    profile.write_text('arch = "x86_64"\nformats = ["onnx", "gzonnx"]\nprecisions = ["fp32"]\nthreads = 1\n'
                       '[accuracy]\ncosine_min = 0.999\n')
    out = tmp_path / "out"
    exported = _edgekit("export", DIGITS, "--target", str(profile), "--out", str(out), "--calib",
                        str(DATA["calib"]), "--val", str(DATA["val"]), env=env)
    assert exported.returncode == 0, exported.stdout + exported.stderr

    manifest = json.loads((out / "manifest.json").read_text())  # this process has no such format: read the JSON
    gz = next(a for a in manifest["artifacts"] if a["name"] == "gzonnx/fp32")
    assert gz["passed"] and gz["file"] == "model.fp32.onnxgz" and [s["step"] for s in gz["steps"]] == ["gzip_onnx"]
    assert gz["accuracy"]["cosine_min"] > 0.99999 and gz["latency"]["p50_ms"] > 0
    round_trip = subprocess.run([sys.executable, "-c", "import sys; from edgekit.manifest import Manifest; "
                                 "t = open(sys.argv[1]).read(); "
                                 "assert Manifest.parse(t, 'm').model_dump_json(indent=2) + '\\n' == t",
                                 str(out / "manifest.json")], capture_output=True, text=True, cwd=REPO,
                                env={**os.environ, **env})
    assert round_trip.returncode == 0, round_trip.stderr

    agent = start_agent(tmp_path, env=env)
    try:
        validated = _edgekit("validate", str(out), "--agent", agent.url, "--token-file", str(tmp_path / "token"),
                             "--all", "--runs", "5", "--warmup", "1", "--min-seconds", "0", env=env)
    finally:
        agent.stop()
    assert validated.returncode == 0, validated.stdout + validated.stderr
    report = json.loads((out / "validation.json").read_text())
    checks = {c["file"]: c for c in report["devices"][0]["artifacts"]}
    gz_check = checks["model.fp32.onnxgz"]
    assert gz_check["status"] == "passed" and gz_check["upload"]["uploaded"] is True
    assert gz_check["accuracy"]["cosine_min"] > 0.99999 and gz_check["benchmark"]["status"] == "ok"


@pytest.mark.parametrize("target", sorted(builtin_target_files()))
def test_the_plan_lists_every_candidate_with_its_steps_without_building(target, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    plan = plan_export(DIGITS, target)
    profile = load_target(target)
    built = [p for p in plan.candidates if not p.excluded]
    assert {p.route for p in built} == set(profile.formats)
    assert all(p.steps for p in built if p.route != "onnx" or p.precision != "fp32")
    text = "\n".join(plan.lines())
    assert f"plan for target {target}" in text and "shared FP32 ONNX model: export_onnx" in text
    for p in built:
        assert f"  {p.name}: " in text
    assert list(tmp_path.iterdir()) == []  # nothing built, nothing written


def test_the_plan_says_why_a_route_has_no_candidate_from_this_source(tmp_path):
    pytest.importorskip("litert_torch")
    profile = tmp_path / "fp32.toml"
    profile.write_text('formats = ["tflite"]\nprecisions = ["fp32"]\nthreads = 1\n')
    given = export(DIGITS, profile, out=tmp_path / "e", benchmark=False, **DATA).out_dir / "model.fp32.tflite"
    text = "\n".join(plan_export(str(given), "x86").lines())
    assert "onnx/fp32: not built: no route: a .tflite source cannot be converted to ONNX by edgekit" in text
    assert "tflite/given: source → copy(file=model.fp32.tflite)" in text


def test_auto_in_a_profile_is_a_clear_error(tmp_path):
    profile = tmp_path / "auto.toml"
    profile.write_text('formats = ["auto"]\nprecisions = ["fp32"]\n')
    with pytest.raises(TargetError, match="auto is a selection mode, not a format"):
        load_target(profile)


def test_export_plan_on_the_command_line_builds_nothing(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from edgekit.cli import app

    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["export", DIGITS, "--target", "x86", "--plan"])
    assert result.exit_code == 0, result.output
    assert "openvino/int8_static: shared FP32 ONNX model → openvino_quantize(" in result.output
    assert "onnx/bf16: not built: no bf16 route in onnx" in result.output
    if "BF16" in cpu_capabilities():  # NNCF quantizes once; the bf16 remainder is the same IR compiled otherwise
        assert "openvino/int8_bf16: the model of openvino/int8_static → copy" in result.output
    else:
        assert "openvino/int8_bf16: not built: this host's CPU has no bf16 arithmetic" in result.output
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def executorch_only(tmp_path_factory):
    pytest.importorskip("executorch")
    return export(DIGITS, "x86", out=tmp_path_factory.mktemp("executorch") / "out", format="executorch",
                  benchmark=False, **DATA)


def test_without_an_onnx_graph_the_modules_tell_the_model_kind(executorch_only):
    int8 = next(c for c in executorch_only.candidates if c.name == "executorch/int8_static")
    assert int8.notes[0].startswith("int8 → int8_static (model kind convolutional")
    assert executorch_only.manifest["int8_recipe"]["model_kind"] == "convolutional"


def test_a_recommended_pte_says_the_device_needs_torch(executorch_only):
    assert executorch_only.manifest["recommended"] == "model.fp32.pte"  # no timing: the first passing one
    assert ("executorch/fp32 is recommended: the device runs .pte files with edgekit[agent,executorch], whose "
            "ExecuTorch runtime brings torch (the other formats' runtimes do not)") in executorch_only.manifest["notes"]
    digits = export(DIGITS, "x86", out=executorch_only.out_dir.parent / "onnx", format="onnx", benchmark=False,
                    **DATA)
    assert not any("brings torch" in note for note in digits.manifest["notes"])


def test_the_digits_default_export_gates_and_times_executorch(tmp_path):
    pytest.importorskip("executorch")
    result = export(DIGITS, "x86", out=tmp_path / "out", **DATA)
    by_name = {c.name: c for c in result.candidates}
    not_built = {r["candidate"]: r["reason"] for r in result.manifest["not_built"]}
    if "executorch/int8_static" not in by_name:  # a slow INT8 the timed figures said could not win
        assert not_built["executorch/int8_static"].startswith("it could not win: executorch/fp32's p50")
    for name in (n for n in ("executorch/fp32", "executorch/int8_static") if n in by_name):
        candidate = by_name[name]
        assert candidate.artifact is not None and candidate.artifact.path.suffix == ".pte", candidate.reason
        assert candidate.accuracy is not None and candidate.latency["p50_ms"] > 0
    assert by_name["executorch/fp32"].accuracy.cosine_min > 0.9999
    delegation = by_name["executorch/fp32"].steps[0].details
    assert delegation, "the step says what XNNPACK took and what it left"
