"""The routes design: a format is one declared route. A fourth route added in one file (a plugin) is built,
gated, timed, stored by a real agent and validated on it; ``--plan`` shows every bundled profile's candidates and
steps without building; ``auto`` is a mode, not a format."""

from __future__ import annotations

import pytest

from edgekit.errors import TargetError
from edgekit.evaluate.validate import validate
from edgekit.exporter.pipeline import export
from edgekit.exporter.plan import plan_export
from edgekit.manifest import Manifest
from edgekit.targets import builtin_target_files, load_target
from testkit import REPO
from testkit.agent_process import start_agent

PLUGIN = "tests.system.plugins.gzip_route"
DIGITS = str(REPO / "samples" / "digits" / "model.py") + ":build"
DATA = {"calib": REPO / "samples" / "digits" / "calib.npz", "val": REPO / "samples" / "digits" / "val.npz"}


@pytest.fixture(scope="module")
def gzip_route():
    """The plugin, imported here as the agent's worker imports it from ``EDGEKIT_PLUGINS``."""
    return pytest.importorskip(PLUGIN)


def test_a_fourth_route_in_one_file_is_built_gated_timed_stored_and_validated(gzip_route, tmp_path):
    profile = tmp_path / "gz.toml"
    profile.write_text('arch = "x86_64"\nformats = ["onnx", "gzonnx"]\nprecisions = ["fp32"]\nthreads = 1\n'
                       '[accuracy]\ncosine_min = 0.999\n')
    result = export(DIGITS, profile, out=tmp_path / "out", **DATA)

    gz = next(c for c in result.candidates if c.name == "gzonnx/fp32")
    assert gz.usable and gz.artifact.path.name == "model.fp32.onnxgz"
    assert gz.accuracy.cosine_min > 0.99999 and gz.latency["p50_ms"] > 0
    assert [s.step for s in gz.steps] == ["gzip_onnx"]
    manifest = Manifest.load(result.out_dir)
    assert {a.name for a in manifest.artifacts} == {"onnx/fp32", "gzonnx/fp32"}

    agent = start_agent(tmp_path, env={"EDGEKIT_PLUGINS": PLUGIN})
    try:
        report = validate(result.out_dir, [agent.url], token_file=tmp_path / "token", all_candidates=True,
                          runs=5, warmup=1, min_seconds=0.0)
    finally:
        agent.stop()
    checks = {c.file: c for c in report.devices[0].artifacts}
    assert checks["model.fp32.onnxgz"].status == "passed", checks["model.fp32.onnxgz"].to_dict()
    assert checks["model.fp32.onnxgz"].upload["uploaded"] is True
    assert checks["model.fp32.onnxgz"].accuracy["cosine_min"] > 0.99999
    assert checks["model.fp32.onnxgz"].benchmark["status"] == "ok"


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
