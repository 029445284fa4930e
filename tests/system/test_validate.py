"""edgekit validate against real agents on loopback: device outputs equal host outputs, uploads are skipped the
second time, several devices in parallel, and every failure (token, unreachable, budget, crash) is one clear
line with its exit code."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import httpx
import numpy as np
import pytest
from typer.testing import CliRunner

from edgekit.agent.client import AgentClient, AgentError
from edgekit.cli import app
from edgekit.errors import InputError
from edgekit.evaluate.validate import validate
from edgekit.exporter.pipeline import export
from testkit import model_ref
from testkit.agent_process import free_port, start_agent

runner = CliRunner()
FAST = {"runs": 10, "warmup": 1, "min_seconds": 0.0}
FAST_ARGS = ["--runs", "10", "--warmup", "1", "--min-seconds", "0"]


def invoke(*args):
    return runner.invoke(app, ["validate", *(str(a) for a in args)])


@pytest.fixture(scope="module")
def agents(tmp_path_factory):
    """Two agents sharing one token file (two devices of one user), each with its own store."""
    folder = tmp_path_factory.mktemp("agents")
    first = start_agent(folder, store=folder / "store-a")
    try:
        second = start_agent(folder, store=folder / "store-b")
    except BaseException:
        first.stop()
        raise
    yield first, second, folder / "token"
    first.stop()
    second.stop()


@pytest.fixture(scope="module")
def onnx_folder(tmp_path_factory, cnn_data) -> Path:
    out = tmp_path_factory.mktemp("export") / "cnn-onnx"
    export(model_ref("tiny_cnn"), "x86", out=out, format="onnx", calib=cnn_data["calib"], val=cnn_data["val"],
           outputs=["output_0:class"], benchmark=False, rescue=False, accuracy={"top1_agreement_min": 0.85})
    return out


@pytest.fixture(scope="module")
def tflite_folder(tmp_path_factory, cnn_data) -> Path:
    folder = tmp_path_factory.mktemp("export-tflite")
    profile = folder / "int8.toml"
    profile.write_text('formats = ["tflite"]\nprecisions = ["int8_static"]\nthreads = 1\n'
                       '[accuracy]\ncosine_min = 0.9\n[latency]\np90_ms = 1000\n')
    out = folder / "cnn-tflite"
    export(model_ref("tiny_cnn"), profile, out=out, calib=cnn_data["calib"], val=cnn_data["val"],
           outputs=["output_0:class"], benchmark=False)
    return out


def copy_of(folder: Path, tmp_path: Path) -> Path:
    target = tmp_path / folder.name
    shutil.copytree(folder, target)
    return target


def digests(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_round_trip_device_equals_host_and_second_run_skips_upload(agents, onnx_folder, tmp_path):
    agent, _, token_file = agents
    folder = copy_of(onnx_folder, tmp_path)
    before = digests(folder)
    with AgentClient(agent.url, agent.token) as client:  # a fresh store entry, whatever ran before
        digest = hashlib.sha256((folder / "model.fp32.onnx").read_bytes()).hexdigest()
        if client.has(digest):
            client.delete(digest)

    first = validate(folder, [agent.url], token_file=token_file, **FAST)

    assert first.passed and first.exit_code == 0
    check = first.devices[0].artifacts[0]
    assert check.file == "model.fp32.onnx" and check.status == "passed"
    assert check.upload["uploaded"] is True and check.upload["digest"] == digest
    assert check.accuracy["samples"] == 24  # every sample of the export's validation data
    assert check.accuracy["cosine_min"] > 1 - 1e-9
    assert check.accuracy["outputs"][0]["max_abs_error"] < 1e-5
    assert check.accuracy["top1_agreement"] == 1.0
    latency = check.benchmark["latency"]
    assert check.benchmark["status"] == "ok" and latency["runs"] >= 10 and 0 < latency["p50_ms"] <= latency["p90_ms"]
    written = json.loads((folder / "validation.json").read_text())
    assert written["passed"] is True and written["exit_code"] == 0
    assert written["devices"][0]["artifacts"][0]["accuracy"]["cosine_min"] == check.accuracy["cosine_min"]
    assert written["devices"][0]["device"]["arch"] and "conditions" in written["devices"][0]["device"]
    after = digests(folder)
    owned = json.loads((folder / ".edgekit-owned.json").read_text())["entries"]
    assert "validation.json" in owned  # recorded as edgekit's, so a later --overwrite may replace it
    assert after.pop("validation.json") and after.pop(".edgekit-owned.json") and after == \
        {k: v for k, v in before.items() if k != ".edgekit-owned.json"}, "validate may only add validation.json"

    second = validate(folder, [agent.url], token_file=token_file, **FAST)

    again = second.devices[0].artifacts[0]
    assert second.passed and again.upload["uploaded"] is False and again.upload["digest"] == digest
    assert "upload skipped" in " ".join(again.notes)
    assert again.accuracy["outputs"][0]["max_abs_error"] == check.accuracy["outputs"][0]["max_abs_error"]


def test_two_agents_both_get_results_and_json_is_the_file(agents, onnx_folder, tmp_path):
    first, second, token_file = agents
    folder = copy_of(onnx_folder, tmp_path)
    result = invoke(folder, "--agent", first.url, "--agent", second.url, "--token-file", token_file, "--json",
                    *FAST_ARGS)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report == json.loads((folder / "validation.json").read_text())
    assert [d["agent"] for d in report["devices"]] == [first.url, second.url]
    for device in report["devices"]:
        assert device["passed"] and device["artifacts"][0]["accuracy"]["cosine_min"] > 1 - 1e-9


def test_table_names_each_artifact_and_verdict(agents, onnx_folder, tmp_path):
    agent, _, token_file = agents
    result = invoke(copy_of(onnx_folder, tmp_path), "--agent", agent.url, "--token-file", token_file, "--all",
                    *FAST_ARGS)
    assert result.exit_code == 0, result.output
    for text in ("model.fp32.onnx", "model.int8_static.onnx", "p90 ms", "p50 CI ms", "✓ within", "validation passed"):
        assert text in result.output


def test_wrong_token_exits_6_with_hint(agents, onnx_folder, tmp_path):
    agent, _, _ = agents
    wrong = tmp_path / "wrong-token"
    wrong.write_text("not-the-token-of-this-agent\n")
    result = invoke(copy_of(onnx_folder, tmp_path), "--agent", agent.url, "--token-file", wrong, *FAST_ARGS)
    assert result.exit_code == 6, result.output
    assert "HTTP 401" in result.output and "wrong or missing token: pass --token-file" in result.output
    assert "Traceback" not in result.output


def test_missing_token_exits_6_before_contacting_anyone(onnx_folder, tmp_path, monkeypatch):
    monkeypatch.delenv("EDGEKIT_AGENT_TOKEN", raising=False)
    result = invoke(copy_of(onnx_folder, tmp_path), "--agent", f"http://127.0.0.1:{free_port()}")
    assert result.exit_code == 6 and "no agent token given" in result.output and "EDGEKIT_AGENT_TOKEN" in result.output


def test_unreachable_agent_exits_6_while_the_other_device_still_validates(agents, onnx_folder, tmp_path):
    agent, _, token_file = agents
    dead = f"http://127.0.0.1:{free_port()}"
    folder = copy_of(onnx_folder, tmp_path)
    result = invoke(folder, "--agent", agent.url, "--agent", dead, "--token-file", token_file, *FAST_ARGS)
    assert result.exit_code == 6, result.output
    assert f"cannot connect to the agent at {dead}" in result.output
    assert f"is `edgekit agent serve` running at {dead}?" in result.output
    devices = json.loads((folder / "validation.json").read_text())["devices"]
    assert devices[0]["passed"] is True and devices[1]["error"]["exit_code"] == 6


def test_latency_budget_broken_exits_5(agents, onnx_folder, tmp_path):
    agent, _, token_file = agents
    result = invoke(copy_of(onnx_folder, tmp_path), "--agent", agent.url, "--token-file", token_file,
                    "--max-p90", "0.000001", *FAST_ARGS)
    assert result.exit_code == 5, result.output
    assert "budget broken" in result.output and "p90 latency" in result.output and "> budget 1e-06 ms" in result.output


def test_latency_budget_from_the_manifest_target(agents, onnx_folder, tmp_path):
    agent, _, token_file = agents
    folder = copy_of(onnx_folder, tmp_path)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["target"]["latency"] = {"p50_ms": 0.000001, "p90_ms": None}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    result = validate(folder, [agent.url], token_file=token_file, **FAST)
    check = result.devices[0].artifacts[0]
    assert not result.passed and result.exit_code == 5 and check.status == "failed"
    assert len(check.violations) == 1 and check.violations[0].startswith("p50 latency")
    assert check.accuracy["cosine_min"] > 1 - 1e-9  # accurate, only too slow


def test_tflite_int8_io_validates(agents, tflite_folder, tmp_path):
    agent, _, token_file = agents
    folder = copy_of(tflite_folder, tmp_path)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["recommended"] == "model.int8_static.tflite"
    result = validate(folder, [agent.url], token_file=token_file, **FAST)
    check = result.devices[0].artifacts[0]
    assert result.passed, result.problems()
    assert check.benchmark["latency"]["threads"] == 1  # the profile's threads
    # same int8 kernels and the same float <-> int8 I/O conversion on both sides: identical numbers
    assert check.accuracy["outputs"][0]["max_abs_error"] < 1e-6 and check.accuracy["top1_agreement"] == 1.0


def test_busy_agent_is_retried_after_retry_after_then_gives_up():
    calls = []

    def busy_twice(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        if len(calls) <= 2:
            return httpx.Response(429, headers={"Retry-After": "0"}, json={"detail": "busy"})
        return httpx.Response(200, json={"status": "ok", "agent": "edgekit", "version": "0.1.0"})

    with AgentClient("http://device:1", "t", transport=httpx.MockTransport(busy_twice)) as client:
        assert client.health()["agent"] == "edgekit" and len(calls) == 3

    always = httpx.MockTransport(lambda request: httpx.Response(429, headers={"Retry-After": "0"},
                                                                json={"detail": "the agent is busy"}))
    with AgentClient("http://device:1", "t", busy_retries=2, transport=always) as client:
        with pytest.raises(AgentError) as caught:
            client.info()
    assert caught.value.status_code == 429 and caught.value.exit_code == 6
    assert "HTTP 429 (busy after 2 retries): the agent is busy" in caught.value.message


def test_client_infer_equals_host_runner_and_unknown_digest_is_404(agents, onnx_folder, cnn_data):
    from edgekit.runtime import open_runner

    agent, _, _ = agents
    model = onnx_folder / "model.fp32.onnx"
    images = np.load(cnn_data["val"])["x"][:5]
    host = np.concatenate([open_runner(model).run({"x": images[i:i + 1]})[0] for i in range(5)])
    with AgentClient(agent.url, agent.token) as client:
        stored = client.upload(model)
        assert stored["format"] == "onnx" and stored["size_bytes"] == model.stat().st_size
        assert stored["digest"] in [a["digest"] for a in client.list()]
        (device,) = client.infer(stored["digest"], {"x": images})
        with pytest.raises(AgentError) as caught:
            client.infer("0" * 64, {"x": images})
    assert device.shape == host.shape == (5, 5)
    np.testing.assert_allclose(device, host, rtol=0, atol=1e-6)
    assert caught.value.status_code == 404 and "HTTP 404" in caught.value.message and caught.value.exit_code == 6


def test_a_moved_folder_validates_on_the_samples_it_ships_and_refuses_without_them(agents, onnx_folder, tmp_path,
                                                                                      cnn_data):
    agent, _, token_file = agents
    folder = tmp_path / "elsewhere" / "deeper" / onnx_folder.name  # the data's relative path leads nowhere from here
    shutil.copytree(onnx_folder, folder)
    record = json.loads((folder / "manifest.json").read_text())["data"]["validation"]
    assert not Path(record["path"]).is_absolute() and (onnx_folder / record["path"]).resolve() == cnn_data["val"]

    moved = validate(folder, [agent.url], token_file=token_file, **FAST)
    assert moved.passed and moved.report["data"]["synthetic"] is False
    assert moved.devices[0].artifacts[0].accuracy["samples"] == 24 == record["shipped"]["samples"]
    assert "using the 24 samples the folder ships (samples/validation.npz)" in moved.report["data"]["notes"][0]

    (folder / "samples" / "validation.npz").unlink()
    with pytest.raises(InputError) as caught:
        validate(folder, [agent.url], token_file=token_file, **FAST)
    assert "no validation data" in caught.value.message and "--val" in caught.value.hint

    given = validate(folder, [agent.url], token_file=token_file, val=cnn_data["val"], samples=10, **FAST)
    assert given.report["data"]["synthetic"] is False and given.devices[0].artifacts[0].accuracy["samples"] == 10


def _tampered(folder: Path) -> None:
    with open(folder / "model.fp32.onnx", "ab") as fh:
        fh.write(b"\0")


def _nothing_recommended(folder: Path) -> None:
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["recommended"] = None
    (folder / "manifest.json").write_text(json.dumps(manifest))


BAD_FOLDERS = {
    "no manifest": (lambda f: (f / "manifest.json").unlink(), "no manifest.json in"),
    "file changed": (_tampered, "changed since the export"),
    "nothing recommended": (_nothing_recommended, "has no recommended artifact"),
}


@pytest.mark.parametrize("case", sorted(BAD_FOLDERS))
def test_bad_folder_exits_2_and_writes_nothing(case, onnx_folder, tmp_path):
    spoil, message = BAD_FOLDERS[case]
    folder = copy_of(onnx_folder, tmp_path)
    spoil(folder)
    before = digests(folder)
    token = tmp_path / "token"
    token.write_text("x" * 40)
    result = invoke(folder, "--agent", f"http://127.0.0.1:{free_port()}", "--token-file", token)
    assert result.exit_code == 2 and message in result.output and "hint:" in result.output, result.output
    assert digests(folder) == before


def test_export_measures_candidates_on_the_agent(agents, tmp_path, monkeypatch):
    """`edgekit export --agent URL`: the choice is made from latency measured on the device."""
    first, _, token_file = agents
    result = runner.invoke(app, ["export", model_ref("tiny_cnn"), "--target", "x86", "--format", "onnx",
                                 "--out", str(tmp_path / "on-device"), "--top1-min", "0.5",
                                 "--agent", first.url, "--token-file", str(token_file)])
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "on-device" / "manifest.json").read_text())
    assert manifest["latency_measured_on"]["where"] == "device"
    assert manifest["latency_measured_on"]["agent"] == first.url
    usable = [a for a in manifest["artifacts"] if a["passed"]]
    assert usable and all(a["latency"]["p50_ms"] > 0 and "p50_ci_ms" in a["latency"] for a in usable)
    stored = {m["digest"] for m in AgentClient(first.url, first.token).list()}
    assert {a["sha256"] for a in usable} <= stored
    assert "p50 ms (device)" in result.output
