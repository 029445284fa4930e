"""No decision from the wrong machine: latency measured off the target's architecture (or under emulation, or not at
all) is information only and the recommendation is provisional, by a stated rule; `validate --all` on a device of
the target's architecture then makes the measured choice and records it in the manifest."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgekit.cli import app
from edgekit.errors import InputError, TargetError
from edgekit.evaluate.select import MEASURED_RULE, apply_validation, select
from edgekit.evaluate.validate import validate
from edgekit.exporter.candidates import PROVISIONAL_RULE, Candidate, choose_by_rule
from edgekit.exporter.routes import int8_kernels_on
from edgekit.exporter.pipeline import export
from edgekit.exporter.steps import Artifact
from edgekit.manifest import Manifest
from edgekit.targets import load_target
from testkit import REPO, model_ref
from testkit.agent_process import start_agent

DIGITS = REPO / "samples" / "digits"
FAST = {"runs": 10, "warmup": 1, "min_seconds": 0.0}
runner = CliRunner()


@pytest.fixture(scope="module")
def agent(tmp_path_factory):
    folder = tmp_path_factory.mktemp("choice-agent")
    process = start_agent(folder)
    yield process, folder / "token"
    process.stop()


@pytest.fixture(scope="module")
def rpi_digits(tmp_path_factory):
    """`edgekit export --target rpi` of the digits sample on this x86 host, with host latency measured."""
    out = tmp_path_factory.mktemp("rpi") / "digits-rpi"
    result = runner.invoke(app, ["export", f"{DIGITS}/model.py:build", "--target", "rpi", "--calib",
                                 str(DIGITS / "calib.npz"), "--val", str(DIGITS / "val.npz"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out, result.output


def file_candidate(tmp_path: Path, fmt: str, precision: str, size: int) -> Candidate:
    path = tmp_path / f"model.{precision}.{fmt}"
    path.write_bytes(b"\0" * size)
    candidate = Candidate(fmt, precision, Artifact(path, fmt, precision))
    candidate.latency = {"p50_ms": 1.0 if precision == "fp32" else 9.0}  # int8 "slower" here: must not matter
    return candidate


def test_rule_picks_the_smallest_passing_static_int8_and_rejects_nothing(tmp_path):
    pool = [file_candidate(tmp_path, "onnx", "fp32", 400), file_candidate(tmp_path, "onnx", "int8_static", 120),
            file_candidate(tmp_path, "tflite", "fp32", 390), file_candidate(tmp_path, "tflite", "int8_static", 110)]
    best, notes = choose_by_rule(pool)
    assert best.name == "tflite/int8_static" and PROVISIONAL_RULE in notes[0]
    assert [c.status for c in pool] == ["passed", "passed", "passed", "selected"]
    pool[3].status = pool[1].status = "rejected"  # no static INT8 passed: the first passing one in profile order
    best, _ = choose_by_rule(pool)
    assert best.name == "onnx/fp32"


def ir_candidate(tmp_path: Path, precision: str, xml: int, weights: int) -> Candidate:
    """An OpenVINO IR: the .xml names the graph, the .bin beside it holds the weights."""
    path = tmp_path / f"model.{precision}.xml"
    path.write_bytes(b"\0" * xml)
    path.with_suffix(".bin").write_bytes(b"\0" * weights)
    return Candidate("openvino", precision, Artifact(path, "openvino", precision))


def test_rule_sizes_an_openvino_ir_by_its_xml_and_bin_and_counts_its_int8_on_x86_only(tmp_path):
    onnx_int8 = file_candidate(tmp_path, "onnx", "int8_static", 120)
    ir_int8 = ir_candidate(tmp_path, "int8_static", 10, 150)  # the .xml alone (10 B) would look smallest
    best, _ = choose_by_rule([onnx_int8, ir_int8], int8_kernels_on("x86_64"))
    assert best is onnx_int8
    (tmp_path / "small").mkdir()
    ir_small = ir_candidate(tmp_path / "small", "int8_static", 10, 50)
    onnx_int8.status = "passed"
    best, _ = choose_by_rule([onnx_int8, ir_small], int8_kernels_on("x86_64"))
    assert best is ir_small  # OpenVINO has int8 kernels on x86-64: its smaller INT8 is the rule's choice
    onnx_int8.status = ir_small.status = "passed"
    # not on arm64: the rule does not count it there
    best, _ = choose_by_rule([ir_small, onnx_int8], int8_kernels_on("arm64"))
    assert best is onnx_int8
    assert "OpenVINO: x86-64" in PROVISIONAL_RULE


def test_arm_targets_have_no_openvino_candidates():
    """OpenVINO is an x86-64 format here: the ARM profiles do not list it, and an ARM profile that does is refused
    when it is loaded, with the reason."""
    for name in ("rpi", "mobile"):
        profile = load_target(name)
        assert profile.arch == "arm64" and "openvino" not in profile.formats
        assert "bf16" not in [p.value for p in profile.precisions]  # bf16 is OpenVINO's alone
    assert "openvino" in load_target("x86").formats


def test_an_arm_profile_listing_openvino_is_refused(tmp_path):
    profile = tmp_path / "pi-ov.toml"
    profile.write_text('arch = "arm64"\nformats = ["onnx", "openvino"]\nprecisions = ["fp32"]\n')
    with pytest.raises(TargetError, match="openvino runs on x86_64 here, and this target is arm64"):
        load_target(str(profile))
    result = runner.invoke(app, ["export", f"{DIGITS}/model.py:build", "--target", str(profile),
                                 "--out", str(tmp_path / "out")])
    assert result.exit_code != 0 and "Traceback" not in result.output and "use one that runs there: onnx, tflite" in result.output
    assert not (tmp_path / "out").exists()


def test_rpi_export_on_x86_keeps_every_passing_candidate_and_is_provisional(rpi_digits):
    out, output = rpi_digits
    manifest = json.loads((out / "manifest.json").read_text())
    choice = manifest["choice"]
    assert choice["provisional"] is True and choice["rule"] == PROVISIONAL_RULE
    assert "not on the arm64 target" in choice["why"]
    artifacts = manifest["artifacts"]
    assert len(artifacts) == 4 and all(a["passed"] for a in artifacts), [a["rejected_reason"] for a in artifacts]
    assert not any(a["failure"] == "speed" for a in artifacts) and not (out / "rejected").exists()
    assert all((out / a["file"]).is_file() and a["latency"]["p50_ms"] > 0 for a in artifacts)  # measured, info only
    int8 = [a for a in artifacts if a["precision"] == "int8_static"]
    assert manifest["recommended"] == min(int8, key=lambda a: a["size_bytes"])["file"]
    assert manifest["latency_measured_on"]["where"] == "host" and manifest["latency_measured_on"]["emulated"] is False
    assert "☆ provisional" in output and "info only" in output and "provisional, by rule" in output


def test_validate_all_on_a_device_of_another_arch_leaves_the_choice_provisional(agent, rpi_digits, tmp_path):
    process, token_file = agent
    folder = tmp_path / "digits-rpi"
    shutil.copytree(rpi_digits[0], folder)
    before = hashlib.sha256((folder / "manifest.json").read_bytes()).hexdigest()
    result = validate(folder, [process.url], token_file=token_file, all_candidates=True, **FAST)
    assert result.passed, result.problems()
    assert [a.status for a in result.devices[0].artifacts] == ["passed"] * 4  # every artifact ran and matched
    assert result.selection.decided_by is None
    assert any("the target is arm64" in n for n in result.selection.notes)
    assert hashlib.sha256((folder / "manifest.json").read_bytes()).hexdigest() == before


@pytest.fixture
def provisional_x86(tmp_path, cnn_data) -> Path:
    """An x86-64 export that was not benchmarked: its recommendation is provisional until a device measures it."""
    profile = tmp_path / "box.toml"
    profile.write_text('arch = "x86_64"\nformats = ["onnx"]\nprecisions = ["fp32", "int8_static"]\nthreads = 1\n'
                       '[accuracy]\ncosine_min = 0.9\n[latency]\np90_ms = 1000\n')
    out = tmp_path / "box"
    result = export(model_ref("tiny_cnn"), profile, out=out, calib=cnn_data["calib"], val=cnn_data["val"],
                    benchmark=False, rescue=False)
    assert result.manifest["choice"]["provisional"] is True and "not benchmarked" in result.manifest["choice"]["why"]
    return out


def test_validate_all_on_a_matching_device_makes_and_records_the_measured_choice(agent, provisional_x86):
    process, token_file = agent
    result = validate(provisional_x86, [process.url], token_file=token_file, all_candidates=True, **FAST)
    assert result.passed, result.problems()
    manifest = json.loads((provisional_x86 / "manifest.json").read_text())
    report = json.loads((provisional_x86 / "validation.json").read_text())
    p50 = {a["file"]: a["benchmark"]["latency"]["p50_ms"] for a in report["devices"][0]["artifacts"]}
    fastest = min(p50, key=p50.get)
    choice = manifest["choice"]
    assert result.selection.decided_by == process.url and manifest["recommended"] == fastest
    assert choice["provisional"] is False and choice["rule"] == MEASURED_RULE and choice["p50_ms"] == p50
    assert choice["measured_on"]["agent"] == process.url and choice["measured_on"]["emulated"] is False
    assert choice["previous"]["provisional"] is True and choice["made_by"] == "edgekit validate --all"
    assert [a["file"] for a in manifest["artifacts"] if a["status"] == "selected"] == [fastest]
    assert not list(provisional_x86.glob(".*tmp*")), "the manifest is replaced atomically, no temp file left"

    # `edgekit select` makes the same choice again from validation.json
    again = runner.invoke(app, ["select", str(provisional_x86)])
    assert again.exit_code == 0 and f"measured choice on {process.url}" in again.output
    assert json.loads((provisional_x86 / "manifest.json").read_text())["recommended"] == fastest


def test_an_emulated_device_never_decides(agent, provisional_x86):
    """The same report, but the device says it runs under qemu: its latency chooses nothing."""
    process, token_file = agent
    validate(provisional_x86, [process.url], token_file=token_file, **FAST)  # recommended only: no choice
    report = json.loads((provisional_x86 / "validation.json").read_text())
    report["devices"][0]["device"].update(emulated=True, emulation={
        "emulated": True, "emulator": "qemu-user", "evidence": ["the kernel is x86_64 but this userland is aarch64"]})
    selection = apply_validation(provisional_x86, Manifest.load(provisional_x86), report)
    assert selection.decided_by is None
    assert "emulated (the kernel is x86_64 but this userland is aarch64)" in selection.notes[0]
    assert "stays provisional" in selection.notes[-1]


def test_select_without_validation_is_a_clear_error(provisional_x86):
    result = runner.invoke(app, ["select", str(provisional_x86)])
    assert result.exit_code == 2 and "no readable validation.json" in result.output
    with pytest.raises(InputError, match="no readable validation.json"):
        select(provisional_x86)


@pytest.mark.parametrize("text, message", [
    ('{"devices": [{"agent": "http://a"}]', "is not valid JSON"),
    ('{"schema": "edgekit.validation/1", "devices": [{"agent": "http://a", "artifacts": [{"file": 3}]}]}',
     "is not an edgekit validation report"),
    ('{"schema": "edgekit.manifest/2", "devices": []}', "is not an edgekit validation report"),
    ('{"schema": "edgekit.validation/1", "devices": [], "x": NaN}', "is not valid JSON"),
])
def test_select_refuses_a_validation_report_that_edgekit_did_not_write(provisional_x86, text, message):
    (provisional_x86 / "validation.json").write_text(text)
    before = (provisional_x86 / "manifest.json").read_bytes()
    result = runner.invoke(app, ["select", str(provisional_x86)])
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output
    assert (provisional_x86 / "manifest.json").read_bytes() == before
    (provisional_x86 / "validation.json").unlink()  # written non-strict on purpose (the NaN case)
