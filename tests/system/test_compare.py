"""edgekit compare against a real agent on loopback, with the cloud baseline on this host (``--cloud local``), on the
agent's own KServe v2 endpoint, and on a real third-party KServe v2 server (MLServer, from its own venv made by
scripts/setup-mlserver.sh). Numbers are checked against direct measurements, and every bad input is one clear
line with its exit code."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from typer.testing import CliRunner

from edgekit.agent.client import AgentClient
from edgekit.cli import app
from edgekit.errors import InputError
from edgekit.evaluate.cloud import CloudModelMismatch
from edgekit.evaluate.cloud.local import LITERT_CPU, ORT_CPU, ORT_CUDA, TORCH_CUDA_GRAPHS, choose_method
from edgekit.evaluate.cloud.v2_client import input_mismatches
from edgekit.evaluate.compare import compare, parse_agents
from edgekit.exporter.pipeline import export
from edgekit.manifest import Manifest
from edgekit.runtime.onnxrt import OnnxRunner
from testkit import model_ref
from testkit.agent_process import REPO, free_port, start_agent

runner = CliRunner()
FAST = {"runs": 20, "warmup": 2, "min_seconds": 0.0}
FAST_ARGS = ["--runs", "20", "--warmup", "2", "--min-seconds", "0"]
MLSERVER = Path(os.environ.get("EDGEKIT_MLSERVER", REPO / ".venv-mlserver" / "bin" / "mlserver"))


def invoke(*args):
    return runner.invoke(app, ["compare", *(str(a) for a in args)])


@pytest.fixture(scope="module")
def agent(tmp_path_factory):
    folder = tmp_path_factory.mktemp("compare-agent")
    process = start_agent(folder)
    yield process, folder / "token"
    process.stop()


@pytest.fixture(scope="module")
def onnx_folder(tmp_path_factory, cnn_data) -> Path:
    out = tmp_path_factory.mktemp("compare-export") / "cnn-onnx"
    export(model_ref("tiny_cnn"), "x86", out=out, format="onnx", calib=cnn_data["calib"], val=cnn_data["val"],
           benchmark=False, rescue=False, accuracy={"top1_agreement_min": 0.85})
    return out


@pytest.fixture(scope="module")
def local_report(agent, onnx_folder, tmp_path_factory):
    """One compare with --cloud local, shared by the tests that read its report or doctor it into a baseline."""
    process, token_file = agent
    out = tmp_path_factory.mktemp("compare-local")
    result = compare(onnx_folder, [f"pi={process.url}"], token_file=token_file, out=out, **FAST)
    return result


def _mismatching_onnx(path: Path) -> Path:
    """A model that takes 'a: FP32[1,4]', not the artifact's 'x: FP32[1,3,8,8]'."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Relu", ["a"], ["y"])], "other",
                              [helper.make_tensor_value_info("a", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), path)
    return path


@pytest.fixture(scope="module")
def mlserver(onnx_folder, tmp_path_factory):
    """MLServer on free loopback ports, serving the artifact's FP32 model as 'cnn' and another model as 'mismatch'
    through testkit/mlserver_runtime/onnx_runtime.py (ONNX Runtime, 1 thread, in the server process)."""
    if not MLSERVER.is_file():
        message = f"MLServer is not installed at {MLSERVER}: run scripts/setup-mlserver.sh"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    root = tmp_path_factory.mktemp("mlserver")
    models = {"cnn": onnx_folder / "model.fp32.onnx", "mismatch": _mismatching_onnx(root / "other.onnx")}
    http = free_port()
    (root / "settings.json").write_text(json.dumps({
        "host": "127.0.0.1", "http_port": http, "grpc_port": free_port(), "metrics_port": free_port(),
        "parallel_workers": 0, "load_models_at_startup": True}))
    for name, path in models.items():
        (root / name).mkdir()
        (root / name / "model-settings.json").write_text(json.dumps({
            "name": name, "implementation": "onnx_runtime.OnnxModel",
            "parameters": {"uri": str(path), "extra": {"threads": 1}}}))
    log = open(root / "mlserver.log", "wb")
    env = {**os.environ, "PYTHONPATH": str(REPO / "testkit" / "mlserver_runtime")}
    process = subprocess.Popen([str(MLSERVER), "start", str(root)], stdout=log, stderr=subprocess.STDOUT, env=env,
                               cwd=root)
    url = f"http://127.0.0.1:{http}"
    deadline = time.monotonic() + 60
    try:
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"MLServer did not start: {(root / 'mlserver.log').read_text()[-3000:]}")
            try:
                if all(httpx.get(f"{url}/v2/models/{name}/ready", timeout=1).status_code == 200 for name in models):
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _direct_p50(model: Path, threads: int, feeds: dict) -> float:
    return OnnxRunner(model, threads=threads).benchmark(feeds, warmup=20, runs=300).p50_ms


def _first_sample(cnn_data) -> dict:
    return {"x": np.load(cnn_data["val"])["x"][:1]}


# -- --cloud local -------------------------------------------------------------------------------------------

def test_local_cloud_writes_report_with_verdict_and_names_the_method(local_report, onnx_folder, cnn_data):
    result = local_report
    report = result.report
    assert result.exit_code == 0 and result.passed
    assert result.json_path.name == "report.json" and result.html_path.name == "report.html"
    assert json.loads(result.json_path.read_text()) == report
    html = result.html_path.read_text()
    assert html.startswith("<!DOCTYPE html>") and "<svg" in html and "edge vs cloud" in html
    assert not (onnx_folder / "report.json").exists(), "--out puts the report elsewhere"
    assert report["schema"] == "edgekit.report/1" and report["model"]["target"] == "x86"
    assert report["model"]["inputs"] == [{"name": "x", "shape": [1, 3, 8, 8], "dtype": "float32"}]
    assert [a["name"] for a in report["artifacts"]] == ["onnx/fp32"]

    cloud = report["cloud"]
    cores = os.cpu_count()
    assert cloud["kind"] == "local" and cloud["url"] is None and cloud["end_to_end"] is None
    assert cloud["method_id"] == ORT_CPU
    assert cloud["method"].startswith("onnxruntime ") and f"CPU, {cores} threads (all cores)" in cloud["method"]
    assert f"({cores} cores)" in cloud["device"]
    compute = cloud["compute"]
    assert compute["runs"] == 20 and len(compute["samples_ms"]) == 20 and compute["threads"] == cores
    assert compute["min_ms"] <= compute["p50_ms"] <= compute["p90_ms"] <= compute["max_ms"]
    assert cloud["accuracy"]["samples"] == 16 and cloud["accuracy"]["max_abs_error"] < 1e-6
    direct = _direct_p50(onnx_folder / "model.fp32.onnx", cores, _first_sample(cnn_data))
    assert direct / 5 <= compute["p50_ms"] <= direct * 5 + 0.05, (compute["p50_ms"], direct)

    (device,) = report["devices"]
    assert device["name"] == "pi" and device["error"] is None and device["info"]["arch"]
    (run,) = device["results"]
    assert run["artifact"] == "onnx/fp32" and run["status"] == "ok" and run["latency"]["runs"] >= 20
    assert run["accuracy"]["cosine_min"] > 1 - 1e-9 and run["accuracy"]["max_abs_error"] < 1e-5
    assert run["conditions_before"] is not None and run["conditions_after"] is not None
    edge_p50 = run["latency"]["p50_ms"]
    verdict = device["verdict"]
    assert verdict["break_even_rtt_ms"] == pytest.approx(edge_p50 - compute["p50_ms"], abs=1e-6)
    assert verdict["kind"] == ("edge_wins_always" if verdict["break_even_rtt_ms"] <= 0 else "edge_wins_above")
    assert report["verdicts"] == [f"pi: {verdict['text']}"]
    assert report["rtt_profiles"] == {"wired": 5.0, "wifi": 20.0, "4g": 60.0, "3g": 150.0}
    assert report["cloud_by_rtt"]["wifi"] == pytest.approx(compute["p50_ms"] + 20.0, abs=1e-6)
    assert report["gates"] == {"fail_if": [], "baseline": None, "max_regression": None, "violations": [],
                               "passed": True}
    assert report["exit_code"] == 0


def test_cli_gates_pass_and_impossible_gate_fails_with_5(agent, onnx_folder, tmp_path):
    process, token_file = agent
    common = [onnx_folder, "--agent", f"pi={process.url}", "--token-file", token_file, "--rtt", "sat=600",
              *FAST_ARGS]
    passed = invoke(*common, "--fail-if", "p90_ms>1000", "--out", tmp_path / "pass")
    assert passed.exit_code == 0, passed.output
    assert "gates passed" in passed.output and "pi [onnx/fp32]: edge wins" in passed.output
    assert "sat (600 ms RTT)" in passed.output and "report.html" in passed.output

    failed = invoke(*common, "--fail-if", "p50_ms<1000", "--fail-if", "p90_ms>1000", "--json",
                    "--out", tmp_path / "fail")
    assert failed.exit_code == 5, failed.output
    report = json.loads(failed.stdout)
    assert report == json.loads((tmp_path / "fail" / "report.json").read_text())
    assert report["gates"]["passed"] is False and report["exit_code"] == 5
    (violation,) = report["gates"]["violations"]
    assert violation.startswith("pi onnx/fp32: p50_ms ") and "(--fail-if p50_ms<1000)" in violation
    assert report["rtt_profiles"]["sat"] == 600.0


def test_unreachable_device_exits_6_with_a_failed_verdict_while_the_other_is_compared(agent, onnx_folder, tmp_path):
    process, token_file = agent
    dead = f"http://127.0.0.1:{free_port()}"
    result = invoke(onnx_folder, "--agent", f"pi={process.url}", "--agent", f"gone={dead}", "--token-file", token_file,
                    "--json", "--out", tmp_path, *FAST_ARGS)
    assert result.exit_code == 6, result.output
    report = json.loads((tmp_path / "report.json").read_text())
    pi, gone = report["devices"]
    assert pi["verdict"]["kind"] in ("edge_wins_always", "edge_wins_above") and pi["results"][0]["status"] == "ok"
    assert gone["results"] == [] and "cannot connect to the agent" in gone["error"]
    assert gone["verdict"]["kind"] == "failed" and gone["error"] in gone["verdict"]["text"]
    assert report["exit_code"] == 6 and f"error: gone: cannot connect to the agent at {dead}" in result.stderr


def test_target_latency_budget_is_a_gate(agent, onnx_folder, tmp_path):
    process, token_file = agent
    folder = tmp_path / "cnn"
    shutil.copytree(onnx_folder, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["target"]["latency"] = {"p50_ms": 1e-6, "p90_ms": None}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    result = compare(folder, [process.url], token_file=token_file, **FAST)
    assert result.exit_code == 5 and (folder / "report.json").is_file() and (folder / "report.html").is_file()
    device = result.report["devices"][0]
    assert device["name"] == process.url.split("://")[1] and device["verdict"]["kind"] == "edge_misses_budget"
    assert any("target latency budget p50_ms" in v for v in result.violations)


# -- --cloud URL: the agent's own KServe v2 endpoint ------------------------------------------------------------

def test_agent_v2_endpoint_as_cloud_uploads_the_model_and_reports_server_compute(agent, onnx_folder, cnn_data,
                                                                                tmp_path):
    process, token_file = agent
    model = onnx_folder / "model.fp32.onnx"
    with AgentClient(process.url, process.token) as client:  # the cloud agent must get the model from compare
        digest = client.upload(model)["digest"]
        client.delete(digest)

    result = compare(onnx_folder, [f"pi={process.url}"], token_file=token_file, cloud=process.url,
                     cloud_token_file=token_file, out=tmp_path, **FAST)

    assert result.exit_code == 0
    cloud = result.report["cloud"]
    assert cloud["kind"] == "kserve" and cloud["url"] == process.url and cloud["model_name"] == digest
    assert any("uploaded model.fp32.onnx to the edgekit agent" in n for n in cloud["notes"])
    assert "platform onnxruntime_onnx" in cloud["method"] and "edgekit agent" in cloud["device"]
    # the agent lists binary_tensor_data: the 3x8x8 FP32 input goes as 768 raw bytes after a short JSON header
    assert cloud["encoding"] == "binary" and "binary tensors" in cloud["method"]
    assert 768 < cloud["payload_bytes"]["request"] < 768 + 256, cloud["payload_bytes"]
    compute, end_to_end, rtt = cloud["compute"], cloud["end_to_end"], cloud["network_rtt"]
    assert compute["source"] == "parameters.edgekit_compute_ms" and compute["runs"] == end_to_end["runs"] == 20
    assert 0 < compute["p50_ms"] < end_to_end["p50_ms"] and 0 < rtt["p50_ms"] < end_to_end["p50_ms"]
    assert cloud["overhead_ms"] == pytest.approx(max(end_to_end["p50_ms"] - compute["p50_ms"] - rtt["p50_ms"], 0),
                                                 abs=1e-3)
    # the agent's session runs the model with 1 thread; its own timing adds the runner's call overhead
    direct = _direct_p50(model, 1, _first_sample(cnn_data))
    assert direct / 5 <= compute["p50_ms"] <= direct * 10 + 0.25, (compute["p50_ms"], direct)
    assert cloud["accuracy"]["samples"] == 16 and cloud["accuracy"]["max_abs_error"] < 1e-6
    edge_p50 = result.report["devices"][0]["results"][0]["latency"]["p50_ms"]
    verdict = result.report["devices"][0]["verdict"]
    assert verdict["break_even_rtt_ms"] == pytest.approx(edge_p50 - compute["p50_ms"] - cloud["overhead_ms"],
                                                         abs=1e-6)

    # the same outputs by hand: one v2 request, compared with this host's runner
    sample = _first_sample(cnn_data)
    reply = httpx.post(f"{process.url}/v2/models/{digest}/infer", headers=process.headers, json={"inputs": [
        {"name": "x", "shape": [1, 3, 8, 8], "datatype": "FP32", "data": sample["x"].ravel().tolist()}]}).json()
    served = np.asarray(reply["outputs"][0]["data"], dtype=np.float32).reshape(reply["outputs"][0]["shape"])
    np.testing.assert_allclose(served, OnnxRunner(model).run(sample)[0], rtol=0, atol=1e-6)


# -- --cloud URL: MLServer, a third-party KServe v2 server -----------------------------------------------------------

def test_mlserver_as_cloud_end_to_end_without_server_compute(agent, mlserver, onnx_folder, cnn_data, tmp_path):
    process, token_file = agent
    result = invoke(onnx_folder, "--agent", f"pi={process.url}", "--token-file", token_file, "--cloud", mlserver,
                    "--cloud-model", "cnn", "--json", "--out", tmp_path, *FAST_ARGS)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    cloud = report["cloud"]
    assert cloud["kind"] == "kserve" and cloud["url"] == mlserver and cloud["model_name"] == "cnn"
    assert cloud["server"]["name"] == "mlserver" and "mlserver" in cloud["method"]
    assert cloud["encoding"] == "json" and any("binary_tensor_data" in n for n in cloud["notes"])
    assert cloud["compute"] is None and any("does not report its compute time" in n for n in cloud["notes"])
    end_to_end, rtt = cloud["end_to_end"], cloud["network_rtt"]
    assert end_to_end["runs"] == 20 and len(end_to_end["samples_ms"]) == 20
    assert 0 < rtt["p50_ms"] < end_to_end["p50_ms"]
    # MLServer's answers are this host's FP32 outputs
    assert cloud["accuracy"]["samples"] == 16 and cloud["accuracy"]["max_abs_error"] < 1e-6
    # with no server compute, the cloud's time beyond the RTT is end-to-end minus RTT; it cannot be faster than
    # running the model in-process
    beyond = end_to_end["p50_ms"] - rtt["p50_ms"]
    assert beyond >= 0.5 * _direct_p50(onnx_folder / "model.fp32.onnx", 1, _first_sample(cnn_data))
    assert "end-to-end p50 minus the measured RTT" in cloud["verdict_basis"]
    edge_p50 = report["devices"][0]["results"][0]["latency"]["p50_ms"]
    assert report["devices"][0]["verdict"]["break_even_rtt_ms"] == pytest.approx(edge_p50 - beyond, abs=1e-3)
    assert report["cloud_by_rtt"]["wired"] == pytest.approx(beyond + 5.0, abs=1e-3)
    assert "does not report its compute time" in result.stderr


def test_mlserver_model_with_other_inputs_exits_6_naming_both(agent, mlserver, onnx_folder, tmp_path):
    process, token_file = agent
    result = invoke(onnx_folder, "--agent", process.url, "--token-file", token_file, "--cloud", mlserver,
                    "--cloud-model", "mismatch", "--out", tmp_path, *FAST_ARGS)
    assert result.exit_code == 6, result.output
    text = " ".join(result.output.split())
    assert "does not take the artifact's inputs" in text and "no input 'x'" in text
    assert "server: a: FP32[1,4]" in text and "artifact: x: FP32[1,3,8,8]" in text and "--cloud-model" in text
    assert not (tmp_path / "report.json").exists()
    with pytest.raises(CloudModelMismatch):
        compare(onnx_folder, [process.url], token_file=token_file, cloud=mlserver, cloud_model="mismatch", **FAST)


def test_mlserver_unknown_model_exits_6(agent, mlserver, onnx_folder, tmp_path):
    process, token_file = agent
    result = invoke(onnx_folder, "--agent", process.url, "--token-file", token_file, "--cloud", mlserver,
                    "--cloud-model", "nope", "--out", tmp_path)
    assert result.exit_code == 6, result.output
    assert "has no model 'nope'" in result.output and "HTTP 404" in result.output


# -- bad input: one line, the right exit code, nothing measured --------------------------------------------------

def test_unreachable_cloud_exits_6_before_any_device_runs(agent, onnx_folder, tmp_path):
    process, token_file = agent
    dead = f"http://127.0.0.1:{free_port()}"
    started = time.perf_counter()
    result = invoke(onnx_folder, "--agent", process.url, "--token-file", token_file, "--cloud", dead,
                    "--out", tmp_path)
    assert result.exit_code == 6, result.output
    assert f"cannot connect to the cloud endpoint at {dead}" in result.output and "hint:" in result.output
    assert time.perf_counter() - started < 10 and not (tmp_path / "report.json").exists()


@pytest.mark.parametrize("args, message", [
    (["--fail-if", "p90_ms>>20"], "malformed --fail-if 'p90_ms>>20'"),
    (["--fail-if", "latency>20"], "unknown metric 'latency'"),
    (["--rtt", "wifi=fast"], "malformed RTT profile 'wifi=fast'"),
    (["--cloud", "ftp://somewhere"], "neither 'local' nor an http(s)://HOST:PORT URL"),
    (["--max-regression", "10%"], "--max-regression needs --baseline"),
])
def test_malformed_input_exits_2_before_contacting_anyone(onnx_folder, tmp_path, args, message):
    dead = f"http://127.0.0.1:{free_port()}"  # never reached: the input is refused first
    (tmp_path / "token").write_text("x\n")
    result = invoke(onnx_folder, "--agent", dead, "--token-file", tmp_path / "token", *args, "--out", tmp_path)
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())
    assert not (tmp_path / "report.json").exists()


def test_baseline_from_another_model_exits_2(local_report, agent, onnx_folder, tmp_path):
    process, token_file = agent
    other = copy.deepcopy(local_report.report)
    other["model"]["source"] = {"kind": "pytorch", "reference": "elsewhere.py:build", "sha256": "0" * 64}
    (tmp_path / "other.json").write_text(json.dumps(other))
    result = invoke(onnx_folder, "--agent", f"pi={process.url}", "--token-file", token_file,
                    "--baseline", tmp_path / "other.json", "--out", tmp_path, *FAST_ARGS)
    assert result.exit_code == 2, result.output
    assert "baseline report is for another model" in " ".join(result.output.split())
    assert not (tmp_path / "report.json").exists()


@pytest.mark.parametrize("factor, code", [(0.1, 5), (10.0, 0)])
def test_regression_against_a_doctored_baseline(local_report, agent, onnx_folder, tmp_path, factor, code):
    process, token_file = agent
    baseline = copy.deepcopy(local_report.report)
    for device in baseline["devices"]:
        for run in device["results"]:
            run["latency"] = {k: v * factor if k.endswith("_ms") and isinstance(v, float) else v
                              for k, v in run["latency"].items()}
    (tmp_path / "previous.json").write_text(json.dumps(baseline))
    result = invoke(onnx_folder, "--agent", f"pi={process.url}", "--token-file", token_file,
                    "--baseline", tmp_path / "previous.json", "--max-regression", "10%", "--json",
                    "--out", tmp_path / "now", *FAST_ARGS)
    assert result.exit_code == code, result.output
    gates = json.loads(result.stdout)["gates"]
    assert gates["baseline"] == str(tmp_path / "previous.json") and gates["max_regression"] == pytest.approx(0.1)
    if code:
        (violation,) = gates["violations"]
        assert violation.startswith("pi onnx/fp32: p50_ms ") and "slower than the baseline" in violation
    else:
        assert gates["passed"] and gates["violations"] == []


# -- pure functions ----------------------------------------------------------------------------------------------

def test_choose_method_prefers_a_real_gpu_path_and_says_why_not():
    cpu_only = ["CPUExecutionProvider"]
    with_cuda = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert choose_method(False, cpu_only) == (ORT_CPU, [])
    assert choose_method(False, with_cuda) == (ORT_CPU, [])  # onnxruntime-gpu on a host without a GPU
    assert choose_method(True, with_cuda, torch_cuda_module=True) == (ORT_CUDA, [])
    assert choose_method(True, cpu_only, torch_cuda_module=True) == (TORCH_CUDA_GRAPHS, [])
    method, notes = choose_method(True, cpu_only, torch_cuda_module=False)
    assert method == ORT_CPU and "GPU is present" in notes[0] and "onnxruntime-gpu" in notes[0]
    assert choose_method(False, cpu_only, model_format="tflite") == (LITERT_CPU, [])
    assert choose_method(True, with_cuda, torch_cuda_module=True, model_format="tflite")[0] == TORCH_CUDA_GRAPHS


def test_local_cloud_on_a_gpu_host_without_a_gpu_runtime_says_it_runs_on_the_cpu(onnx_folder, cnn_data,
                                                                                 monkeypatch):
    from edgekit.evaluate.cloud import local, reference_model

    monkeypatch.setattr(local, "nvidia_gpu_present", lambda: True)  # torch here is the CPU build: no CUDA
    reference = reference_model(Manifest.load(onnx_folder), onnx_folder)
    reference.outputs = [OnnxRunner(reference.path).run(_first_sample(cnn_data))]
    with local.LocalCloud(reference) as cloud:
        section = cloud.measure(_first_sample(cnn_data), [_first_sample(cnn_data)], warmup=1, runs=5, min_seconds=0)
    assert section["method_id"] == ORT_CPU and "CPU" in section["method"]
    assert any("GPU is present" in note and "flatters the edge" in note for note in section["notes"])


def test_input_mismatches_accept_dynamic_dims_and_name_each_difference():
    ours = [{"name": "x", "shape": [1, 3, 8, 8], "dtype": "float32"}]
    assert input_mismatches([{"name": "x", "datatype": "FP32", "shape": [-1, 3, 8, 8]}], ours) == []
    assert input_mismatches([{"name": "x", "datatype": "FP32", "shape": [1, 3, 8, 8]}],
                            [{"name": "x", "shape": ["batch", 3, 8, 8], "dtype": "float32"}]) == []
    assert input_mismatches([{"name": "x", "datatype": "FP16", "shape": [1, 3, 9, 8]},
                             {"name": "mask", "datatype": "BOOL", "shape": [1]}], ours) == [
        "'x' is FP16, not FP32", "'x' has shape [1, 3, 9, 8], not [1, 3, 8, 8]", "extra inputs ['mask']"]
    assert input_mismatches([{"name": "x", "datatype": "FP32", "shape": [3, 8, 8]}], ours) == [
        "'x' has shape [3, 8, 8], not [1, 3, 8, 8]"]


def test_parse_agents_names_devices_and_refuses_duplicates():
    assert parse_agents(["pi5=http://pi.local:8765", "http://10.0.0.2:8765/"]) == [
        ("pi5", "http://pi.local:8765"), ("10.0.0.2:8765", "http://10.0.0.2:8765")]
    with pytest.raises(InputError, match="given twice"):
        parse_agents(["http://a:1", "http://a:1"])
    with pytest.raises(InputError, match="no agent given"):
        parse_agents([])
