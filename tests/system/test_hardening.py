"""Fail closed, say what happened, leave nothing behind: the gate with NaN, strict JSON, signals, staging
folders, the agent's start-up, and artifact folders that are not what edgekit wrote."""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from edgekit.accuracy import apply_budget, compare_outputs
from edgekit.agent.client import AgentClient, AgentError
from edgekit.errors import AccuracyError, InputError
from edgekit.exporter.artifact_dir import StagedFolder, sweep_stale_staging
from edgekit.exporter.ownership import OWNED_MARKER, STAGING_MARKER
from edgekit.exporter.pipeline import export
from edgekit.files import parse_json, to_json
from edgekit.interrupts import Interrupted, stop_on_signals
from edgekit.manifest import Manifest
from edgekit.progress import SilentProgress
from edgekit.targets import AccuracyBudget
from testkit import REPO, model_ref
from testkit.agent_process import free_port, start_agent

CLI = [sys.executable, "-m", "edgekit.cli"]


def _strict(path: Path):
    return parse_json(path.read_text())


# -- the gate ------------------------------------------------------------------------------------------------

def _report(candidate_values, budget=AccuracyBudget(cosine_min=0.99, max_abs_error=0.5)):
    reference = [[np.array([[1.0, 2.0, 3.0]], np.float32)] for _ in candidate_values]
    candidate = [[np.array([values], np.float32)] for values in candidate_values]
    return apply_budget(compare_outputs(reference, candidate, ["logits"]), budget)


def test_nan_in_outputs_is_a_violation_of_its_own_whatever_the_order():
    good, bad = [1.0, 2.0, 3.0], [math.nan, 2.0, 3.0]
    for order in ([good, bad, good], [bad, good, good], [good, good, bad]):
        report = _report(order)
        assert not report.passed
        assert "outputs contain NaN in 'logits' for 1 of 3 samples" in report.violations
        assert math.isnan(report.cosine_min) and math.isnan(report.max_abs_error)
        assert any(v.startswith("cosine_min nan < 0.99") for v in report.violations)
        assert any(v.startswith("max_abs_error nan > 0.5") for v in report.violations)


def test_inf_fails_even_without_budgets():
    report = _report([[math.inf, 2.0, 3.0]], AccuracyBudget(cosine_min=None))
    assert report.violations == ["outputs contain inf in 'logits' for 1 of 1 samples"]


def test_a_model_that_outputs_nan_fails_its_export_and_the_manifest_stays_strict_json(tmp_path):
    with pytest.raises(AccuracyError) as caught:
        export(model_ref("nan_output"), "x86", out=tmp_path / "nan", format="onnx", benchmark=False)
    assert "the original model's outputs contain NaN in" in caught.value.message
    manifest = _strict(tmp_path / "nan" / "manifest.json")
    assert manifest["status"] == "failed" and not any(a["passed"] for a in manifest["artifacts"])
    fp32 = next(a for a in manifest["artifacts"] if a["precision"] == "fp32")
    assert fp32["accuracy"]["cosine_min"] is None  # NaN is written as null, never as a bare NaN token


def test_strict_json_turns_non_finite_numbers_into_null_and_the_reader_refuses_them():
    assert to_json({"a": math.nan, "b": [math.inf, np.float32(1.5)], "c": np.int64(3)}, indent=None) == \
        '{"a": null, "b": [null, 1.5], "c": 3}'
    with pytest.raises(ValueError, match="NaN is not JSON"):
        parse_json('{"cosine": NaN}')


# -- signals and staging folders -------------------------------------------------------------------------------

def _staging_folders(parent: Path) -> list[str]:
    return [p.name for p in parent.iterdir() if ".tmp-" in p.name or ".old-" in p.name] if parent.exists() else []


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_mid_export_cleans_up_says_so_and_exits_128_plus_the_signal(tmp_path, sig, code):
    out = tmp_path / "outs" / "slow"
    process = subprocess.Popen([*CLI, "export", model_ref("slow_cnn"), "--format", "onnx", "--no-benchmark",
                                "--out", str(out)], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    deadline = time.monotonic() + 120
    while not _staging_folders(out.parent) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    assert _staging_folders(out.parent), "the export never started staging"
    time.sleep(0.5)
    process.send_signal(sig)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == code, stderr
    assert f"interrupted ({signal.Signals(sig).name}): nothing written to {out}" in stderr
    assert "Traceback" not in stderr
    assert not out.parent.exists(), "the parent folders the run created go too"
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_swallowed_interrupt_still_stops_the_next_step_and_the_commit(tmp_path):
    staged = StagedFolder(tmp_path / "out")
    progress = SilentProgress()
    with stop_on_signals():
        try:  # a library that swallows everything, KeyboardInterrupt-like exceptions included
            signal.getsignal(signal.SIGTERM)(signal.SIGTERM, None)  # what Python runs when SIGTERM arrives
        except BaseException:  # noqa: BLE001 - that is the point
            pass
        with pytest.raises(Interrupted) as stopped:
            with progress.step("next step"):
                pass
        assert stopped.value.exit_code == 143
        with pytest.raises(Interrupted):
            staged.commit()
    assert not (tmp_path / "out").exists()
    staged.discard()
    with progress.step("after the run"):  # the pending signal ends with stop_on_signals()
        pass


def _staging(folder: Path, pid: int, host: str | None = None) -> Path:
    folder.mkdir()
    marker = {"owner": "edgekit", "pid": pid, "host": host or socket.gethostname()}
    (folder / STAGING_MARKER).write_text(json.dumps(marker))
    return folder


def test_the_next_run_removes_its_outputs_staging_of_dead_runs_and_restores_a_moved_aside_folder(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = _staging(tmp_path / f".model.tmp-{dead.pid}-abc", dead.pid)
    live = _staging(tmp_path / f".model.tmp-{os.getpid()}-def", os.getpid())  # a run that is still going
    remote = _staging(tmp_path / f".model.tmp-{dead.pid}-ghi", dead.pid, host="another-host")  # shared disk
    other = _staging(tmp_path / f".other.tmp-{dead.pid}-jkl", dead.pid)  # another output's: not this run's business
    unmarked = tmp_path / f".model.tmp-{dead.pid}-mno"  # looks like staging, but edgekit did not mark it
    unmarked.mkdir()
    assert sweep_stale_staging(tmp_path / "model") == [stale]
    assert not stale.exists() and live.exists() and remote.exists() and other.exists() and unmarked.exists()
    backup = _staging(tmp_path / f".kept.old-{dead.pid}-xyz", dead.pid)  # killed between the two renames
    (backup / "manifest.json").write_text("{}")
    assert sweep_stale_staging(tmp_path / "kept") == []
    assert (tmp_path / "kept" / "manifest.json").read_text() == "{}", "the old folder is put back"
    assert not (tmp_path / "kept" / STAGING_MARKER).exists()


def test_artifact_folders_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        staged = StagedFolder(tmp_path / "out")
        final = staged.commit()
    finally:
        os.umask(old)
    assert final.stat().st_mode & 0o777 == 0o755
    assert not (final / STAGING_MARKER).exists() and (final / OWNED_MARKER).is_file()


# -- the agent's start-up ----------------------------------------------------------------------------------------

def _serve(tmp_path: Path, *args: str, timeout: float = 60):
    return subprocess.run([*CLI, "agent", "serve", "--store", str(tmp_path / "store"), *args], capture_output=True,
                          text=True, timeout=timeout, cwd=tmp_path)


def test_a_port_in_use_exits_7_with_a_hint_and_creates_nothing(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        token = tmp_path / "new-folder" / "token"
        result = _serve(tmp_path, "--port", str(port), "--token-file", str(token))
    assert result.returncode == 7, result.stderr
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in result.stderr
    assert "hint: another process listens on port" in result.stderr
    assert "listening on" not in result.stderr and "Traceback" not in result.stderr
    assert not token.parent.exists() and not (tmp_path / "store").exists()


@pytest.mark.parametrize("args, code, message", [
    (["--host", "no-such-host.invalid"], 7, "cannot resolve --host no-such-host.invalid"),
    (["--port", "-5"], 2, "Invalid value for '--port'"),
    (["--port", "70000"], 2, "Invalid value for '--port'"),
    (["--host", "0.0.0.0", "--no-token"], 2, "refusing to listen on 0.0.0.0 without a token"),
])
def test_agent_start_mistakes_are_one_clear_message(tmp_path, args, code, message):
    result = _serve(tmp_path, "--token-file", str(tmp_path / "token"), *args)
    assert result.returncode == code, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr and "listening on" not in result.stderr
    assert not (tmp_path / "token").exists() and not (tmp_path / "store").exists()


def test_store_on_a_file_and_token_file_on_a_folder_are_input_errors(tmp_path):
    (tmp_path / "afile").write_text("x")
    stored = subprocess.run([*CLI, "agent", "serve", "--store", str(tmp_path / "afile"), "--port",
                             str(free_port()), "--token-file", str(tmp_path / "t")], capture_output=True, text=True,
                            timeout=60)
    assert stored.returncode == 2 and "is a file, not a folder" in stored.stderr, stored.stderr
    folder = _serve(tmp_path, "--port", str(free_port()), "--token-file", str(tmp_path))
    assert folder.returncode == 2 and f"--token-file {tmp_path} is a folder" in folder.stderr, folder.stderr


def test_sigterm_stops_the_agent_with_one_line_and_143(tmp_path):
    agent = start_agent(tmp_path)
    agent.process.send_signal(signal.SIGTERM)
    assert agent.process.wait(timeout=30) == 143
    log = next(tmp_path.glob("agent-*.log")).read_text()
    assert "edgekit agent stopped (SIGTERM)" in log and "Traceback" not in log


# -- the agent's crash isolation, without stand-ins ---------------------------------------------------------------

@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("model")
    result = export(model_ref("tiny_cnn"), "x86", out=folder / "out", format="onnx", benchmark=False,
                    accuracy={"top1_agreement_min": 0.5})
    return result.out_dir / "model.fp32.onnx"


def test_a_segfaulting_run_on_a_real_agent_is_reported_by_validate(tmp_path, onnx_model):
    from test_validate import invoke

    agent = start_agent(tmp_path, env={"EDGEKIT_AGENT_TEST_FAULT": "segv"})
    try:
        result = invoke(onnx_model.parent, "--agent", agent.url, "--token-file", tmp_path / "token",
                        "--runs", "3", "--warmup", "0", "--min-seconds", "0")
    finally:
        agent.stop()
    assert result.exit_code == 6, result.output
    assert "the runtime crashed (SIGSEGV) during benchmark of model.fp32.onnx" in result.output


def test_test_faults_are_ignored_without_test_hooks(tmp_path, onnx_model):
    agent = start_agent(tmp_path, test_hooks=False, env={"EDGEKIT_AGENT_TEST_FAULT": "segv"})
    try:
        with AgentClient(agent.url, agent.token) as client:
            digest = client.upload(onnx_model)["digest"]
            reply = client.benchmark(digest, runs=2, warmup=0, runner_options={"test_fault": "segv"})
    finally:
        agent.stop()
    assert reply["status"] == "ok", reply


def test_an_onnx_upload_with_external_data_is_refused_and_nothing_is_read(tmp_path, onnx_model):
    import onnx
    from onnx.external_data_helper import set_external_data

    secret = tmp_path / "secret.bin"
    secret.write_bytes(os.urandom(1 << 16))
    model = onnx.load(str(onnx_model))
    for tensor in model.graph.initializer:  # every weight points into a file elsewhere on the machine
        set_external_data(tensor, location="../../../.." + str(secret), offset=0, length=len(tensor.raw_data))
        tensor.data_location = onnx.TensorProto.EXTERNAL
        tensor.ClearField("raw_data")
    path = tmp_path / "external.onnx"
    path.write_bytes(model.SerializeToString())
    agent = start_agent(tmp_path)
    try:
        with AgentClient(agent.url, agent.token) as client:
            with pytest.raises(AgentError) as caught:
                client.upload(path)
            assert client.list() == []
    finally:
        agent.stop()
    assert caught.value.status_code in (400, 415, 422), caught.value.message


class _NotAnAgent(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's naming)
        body, code, kind = ((b"hello", 200, "text/plain") if self.path == "/v1/info"
                            else (b"<!DOCTYPE html>\n<p>nope</p>", 404, "text/html"))
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_a_real_web_server_that_is_not_an_agent_is_named_as_such():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NotAnAgent)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with AgentClient(url, "t") as client:
            with pytest.raises(AgentError) as not_found:
                client.health()
            with pytest.raises(AgentError) as not_json:
                client.info()
    finally:
        server.shutdown()
    assert "HTTP 404" in not_found.value.message and "is not an edgekit agent" in not_found.value.hint
    assert "did not answer JSON" in not_json.value.message and not_json.value.exit_code == 6


# -- artifact folders that are not what edgekit wrote ----------------------------------------------------------------

@pytest.mark.parametrize("content, message", [
    ('{"schema": "edgekit.manifest/3"}', "is not an edgekit manifest: created: Field required"),
    ("[1, 2]", "is not an edgekit manifest: the file: Input should be a valid dictionary"),
    ('{"schema": "edgekit.manifest/2", "target": {}}', "is edgekit.manifest/2, which this edgekit does not read"),
    ('{"schema": "edgekit.report/1", "target": {}, "inputs": [], "artifacts": []}',
     "schema: Input should be 'edgekit.manifest/3'"),
    ('{"cosine": NaN}', "is not valid JSON: NaN is not JSON"),
])
def test_a_manifest_of_the_wrong_shape_is_an_input_error(tmp_path, content, message):
    (tmp_path / "manifest.json").write_text(content)
    with pytest.raises(InputError) as caught:
        Manifest.load(tmp_path)
    assert message in caught.value.message and caught.value.hint
    (tmp_path / "manifest.json").unlink()  # the NaN case is not strict JSON on purpose


def test_a_missing_artifact_folder_is_named_as_missing(tmp_path):
    with pytest.raises(InputError, match="artifact folder not found"):
        Manifest.load(tmp_path / "nope")


def test_out_names_the_target_and_the_model(tmp_path):
    result = export(model_ref("tiny_cnn"), "rpi", out=tmp_path / "{model}-{target}", format="onnx", benchmark=False,
                    accuracy={"top1_agreement_min": 0.5})
    assert result.out_dir == tmp_path / "models-rpi"  # {model}: the factory's file, testkit/models.py
    assert 'out = "edgekit-out/digits-{target}"' in (REPO / "samples" / "digits" / "edgekit.toml").read_text()
