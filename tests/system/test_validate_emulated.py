"""What validate does with an emulated device (the output check first, on a few samples, then a short benchmark
that decides nothing), how a failed step is shown, and a stopped device named as such.

The emulated reading itself is the agent's (tests/system/test_emulation.py); the real emulated ARM64 device runs behind
`make test-emulated`. Here one real agent on loopback answers, with its /v1/info saying "emulated"."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from edgekit.agent.client import AgentClient
from edgekit.agent.worker import TEST_FAULT_ENV
from edgekit.errors import EdgekitError
from edgekit.evaluate.devices import EMULATED_RUNS, EMULATED_SAMPLES
from edgekit.evaluate.validate import validate
from edgekit.exporter.pipeline import export
from edgekit.progress import SilentProgress
from testkit import model_ref
from testkit.agent_process import free_port, start_agent

CLI = [sys.executable, "-m", "edgekit.cli"]


@pytest.fixture(scope="module")
def agent(tmp_path_factory):
    running = start_agent(tmp_path_factory.mktemp("agent"))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def folder(tmp_path_factory, cnn_data):
    out = tmp_path_factory.mktemp("export") / "cnn"
    export(model_ref("tiny_cnn"), "x86", out=out, format="onnx", calib=cnn_data["calib"], val=cnn_data["val"],
           outputs=["output_0:class"], benchmark=False, rescue=False, accuracy={"top1_agreement_min": 0.85})
    return out


def test_an_emulated_device_checks_outputs_first_on_a_few_samples_then_benchmarks_briefly(agent, folder,
                                                                                          monkeypatch, tmp_path):
    real_info = AgentClient.info

    def emulated_info(client):  # the agent's own reply, as an agent under qemu-user gives it
        info = real_info(client)
        return {**info, "emulated": True, "emulation": {"emulated": True, "emulator": "qemu",
                                                        "evidence": ["this thread's memory map maps qemu"]}}

    monkeypatch.setattr(AgentClient, "info", emulated_info)
    progress = SilentProgress()
    copy = shutil.copytree(folder, tmp_path / "cnn")
    result = validate(copy, [agent.url], token_file=agent.store.parent / "token", runs=50, warmup=10, min_seconds=1.0,
                      progress=progress)
    check = result.devices[0].artifacts[0]
    assert result.passed and check.passed, result.problems()
    steps = list(progress.timings)
    inference = next(i for i, s in enumerate(steps) if ": inference of" in s)
    benchmark = next(i for i, s in enumerate(steps) if ": benchmark" in s)
    assert inference < benchmark, steps  # the output check first: it is what an emulator is good for
    assert f"on {EMULATED_SAMPLES} samples" in steps[inference]
    assert any(f"first {EMULATED_SAMPLES} of 24 samples" in n for n in check.notes)
    assert check.benchmark["latency"]["runs"] == EMULATED_RUNS  # short, and recorded only
    assert check.accuracy["top1_agreement"] == 1.0


def test_a_failed_step_is_shown_with_a_cross(folder, tmp_path):
    hanging = start_agent(tmp_path, env={TEST_FAULT_ENV: "hang"})  # every model run on it hangs
    try:
        done = subprocess.run([*CLI, "validate", folder, "--agent", hanging.url, "--token-file", tmp_path / "token",
                               "--timeout", "2", "--runs", "5", "--warmup", "0", "--min-seconds", "0"],
                              capture_output=True, text=True, timeout=180)
    finally:
        hanging.stop()
    assert done.returncode == 6, done.stderr
    benchmark = next(line for line in done.stderr.splitlines() if ": benchmark" in line)
    assert benchmark.startswith("✗"), done.stderr
    assert "Traceback" not in done.stderr


def test_a_hand_edited_runner_option_is_one_line(agent, folder, tmp_path):
    copy = shutil.copytree(folder, tmp_path / "cnn")
    manifest = json.loads((copy / "manifest.json").read_text())
    for entry in manifest["artifacts"]:
        entry["runner_options"] = {**entry.get("runner_options", {}), "turbo": True}
    (copy / "manifest.json").write_text(json.dumps(manifest))
    done = subprocess.run([*CLI, "validate", copy, "--agent", agent.url, "--token-file", agent.store.parent / "token"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "runner option 'turbo'" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_a_stopped_device_is_named_as_such_not_its_token_file(folder, tmp_path):
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens: the device was stopped with its token
    done = subprocess.run([*CLI, "validate", folder, "--agent", url, "--token-file", tmp_path / "gone" / "token"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 6, done.stderr
    assert f"no agent answers at {url}: the device is not running" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_running_device_with_a_missing_token_file_blames_the_token_file(agent, folder, tmp_path):
    with pytest.raises(EdgekitError) as caught:
        validate(folder, [agent.url], token_file=tmp_path / "gone" / "token")
    assert caught.value.exit_code == 2 and "token file" in caught.value.message
