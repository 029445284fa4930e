"""The agent against a real server on a loopback port: auth, uploads, isolation, crash recovery."""

from __future__ import annotations

import base64
import concurrent.futures
import hashlib
import io
import os
import pickle
import signal
import socket
import time
import zipfile

import httpx
import numpy as np
import pytest

from edgekit.runtime.onnxrt import OnnxRunner
from testkit import model_ref, smooth_images
from testkit.agent_process import start_agent


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory) -> bytes:
    from edgekit import export

    out = tmp_path_factory.mktemp("agent-model") / "cnn"
    export(model_ref("tiny_cnn"), "x86", out=out, format="onnx", benchmark=False, accuracy={"top1_agreement_min": 0})
    return (out / "model.fp32.onnx").read_bytes()


@pytest.fixture(scope="module")
def agent(tmp_path_factory):
    process = start_agent(tmp_path_factory.mktemp("agent"), "--max-upload-mb", "1", "--memory-limit-mb", "1024")
    yield process
    process.stop()


def put(agent, data: bytes, digest: str | None = None, token: str | None = "valid") -> httpx.Response:
    headers = agent.headers if token == "valid" else ({"Authorization": f"Bearer {token}"} if token else {})
    return httpx.put(f"{agent.url}/v1/artifacts/{digest or sha(data)}", content=data, headers=headers, timeout=60)


def post(agent, path: str, body: dict, timeout: float = 60) -> httpx.Response:
    return httpx.post(f"{agent.url}{path}", json=body, headers=agent.headers, timeout=timeout)


def npz_b64(**arrays) -> str:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return base64.b64encode(buffer.getvalue()).decode()


def healthy(agent) -> bool:
    return httpx.get(f"{agent.url}/v1/health", timeout=5).json()["status"] == "ok"


ENDPOINTS = [("GET", "/v1/info"), ("GET", "/v1/artifacts"), ("GET", "/v1/artifacts/" + "0" * 64),
             ("HEAD", "/v1/artifacts/" + "0" * 64), ("DELETE", "/v1/artifacts/" + "0" * 64),
             ("PUT", "/v1/artifacts/" + "0" * 64), ("POST", "/v1/benchmark"), ("POST", "/v1/infer"),
             ("GET", "/v1/openapi.json")]


@pytest.mark.parametrize("method, path", ENDPOINTS)
@pytest.mark.parametrize("authorization", [None, "Bearer wrong-token", "Bearer", "Basic dXNlcjpwYXNz"])
def test_every_endpoint_but_health_needs_the_token(agent, method, path, authorization):
    headers = {"Authorization": authorization} if authorization is not None else {}
    response = httpx.request(method, agent.url + path, headers=headers, content=b"{}", timeout=10)
    assert response.status_code == 401
    assert httpx.get(f"{agent.url}/v1/health").status_code == 200


def test_token_file_is_private_and_strong(agent):
    token_file = agent.store.parent / "token"
    assert oct(token_file.stat().st_mode & 0o777) == "0o600"
    assert len(agent.token) >= 43  # 32 random bytes, url-safe base64
    log = next(agent.store.parent.glob("agent-*.log")).read_text()
    assert agent.token not in log


def test_info_describes_the_device(agent):
    info = httpx.get(f"{agent.url}/v1/info", headers=agent.headers).json()
    assert info["cores"] >= 1 and info["arch"] and "onnxruntime" in info["runtimes"]
    assert "load_1min" in info["conditions"]


def test_upload_benchmark_infer_round_trip(agent, onnx_model):
    first = put(agent, onnx_model)
    assert first.status_code == 201 and first.json()["format"] == "onnx"
    again = put(agent, onnx_model)
    assert again.status_code == 200 and again.json()["created"] is False
    digest = sha(onnx_model)
    assert httpx.head(f"{agent.url}/v1/artifacts/{digest}", headers=agent.headers).status_code == 200
    listed = httpx.get(f"{agent.url}/v1/artifacts", headers=agent.headers).json()["artifacts"]
    assert digest in [a["digest"] for a in listed]

    bench = post(agent, "/v1/benchmark", {"digest": digest, "threads": 1, "warmup": 5, "runs": 40}).json()
    assert bench["status"] == "ok", bench
    latency = bench["latency"]
    assert latency["runs"] >= 40 and 0 < latency["p50_ms"] <= latency["p90_ms"] <= latency["p99_ms"]
    assert latency["p50_ci_ms"][0] <= latency["p50_ms"] <= latency["p50_ci_ms"][1]
    assert latency["peak_rss_mb"] > 0 and "load_1min" in bench["conditions_after"]

    images = smooth_images(5, seed=8)
    reply = post(agent, "/v1/infer", {"digest": digest, "inputs_npz_b64": npz_b64(x=images)}).json()
    assert reply["status"] == "ok", reply
    with np.load(io.BytesIO(base64.b64decode(reply["outputs_npz_b64"]))) as npz:
        device = npz["output_0"]
    host = np.concatenate([OnnxRunner(onnx_model).run({"x": images[i:i + 1]})[0] for i in range(5)])
    np.testing.assert_allclose(device, host, rtol=1e-5, atol=1e-6)


def test_uploaded_arrays_feed_the_benchmark(agent, onnx_model):
    put(agent, onnx_model)
    reply = post(agent, "/v1/benchmark", {"digest": sha(onnx_model), "runs": 5, "warmup": 1,
                                          "inputs_npz_b64": npz_b64(x=smooth_images(2))}).json()
    assert reply["status"] == "ok"
    wrong = post(agent, "/v1/benchmark", {"digest": sha(onnx_model), "runs": 5,
                                          "inputs_npz_b64": npz_b64(y=smooth_images(2))}).json()
    assert wrong["status"] == "error" and "KeyError" in wrong["error"]


def _garbage_cases(onnx_model: bytes) -> dict[str, bytes]:
    rng = np.random.default_rng(1)
    return {"empty": b"", "one byte": b"\x08", "64 random bytes": rng.bytes(64),
            "half an onnx": onnx_model[: len(onnx_model) // 2], "random 4 KiB": rng.bytes(4096),
            "tflite header only": b"\x18\x00\x00\x00TFL3", "tflite header + junk": b"\x18\x00\x00\x00TFL3" + rng.bytes(200),
            "IR bundle header only": b"EKOVIR1\n", "IR bundle, xml length past the end":
                b"EKOVIR1\n" + (1 << 40).to_bytes(8, "little") + b"<net/>",
            "IR bundle + junk": b"EKOVIR1\n" + (64).to_bytes(8, "little") + rng.bytes(300)}


@pytest.mark.parametrize("case", ["empty", "one byte", "64 random bytes", "half an onnx", "random 4 KiB",
                                  "tflite header only", "tflite header + junk", "IR bundle header only",
                                  "IR bundle, xml length past the end", "IR bundle + junk"])
def test_damaged_models_are_refused_with_the_reason(agent, onnx_model, case):
    data = _garbage_cases(onnx_model)[case]
    response = put(agent, data)
    assert response.status_code in (400, 415), response.text
    assert response.json()["detail"]
    assert healthy(agent)
    assert sha(data) not in [a["digest"] for a in httpx.get(f"{agent.url}/v1/artifacts", headers=agent.headers)
                             .json()["artifacts"]]
    assert put(agent, onnx_model).status_code in (200, 201)


@pytest.mark.parametrize("name, data", [
    ("pickle", pickle.dumps({"weights": [1, 2, 3]})),
    ("zip / TorchScript", (lambda b: (zipfile.ZipFile(b, "w").writestr("code/model.py", "x"), b.getvalue())[1])(
        io.BytesIO())),
])
def test_pickles_and_archives_are_refused_unread(agent, name, data):
    response = put(agent, data)
    assert response.status_code == 415 and "not a model this agent runs" in response.json()["detail"]


def test_oversize_upload_is_413_and_nothing_is_stored(agent):
    data = os.urandom(2 * 1024 * 1024)
    response = put(agent, data)
    assert response.status_code == 413
    assert not list((agent.store / "incoming").iterdir())
    assert httpx.head(f"{agent.url}/v1/artifacts/{sha(data)}", headers=agent.headers).status_code == 404


def test_digest_mismatch_and_path_like_names(agent, onnx_model):
    assert put(agent, onnx_model, digest="f" * 64).status_code == 422
    for name in ["..%2F..%2Fetc%2Fpasswd", "../../x", "ABC", "0" * 63, "0" * 64 + ".onnx"]:
        response = httpx.put(f"{agent.url}/v1/artifacts/{name}", content=onnx_model, headers=agent.headers)
        assert response.status_code in (404, 422), name
    stored = {p.name.split(".")[0] for p in (agent.store / "artifacts").iterdir()}
    assert all(len(name) == 64 for name in stored)


def test_crashing_and_hanging_models_leave_the_agent_serving(agent, onnx_model):
    put(agent, onnx_model)
    digest = sha(onnx_model)
    crashed = post(agent, "/v1/benchmark", {"digest": digest, "runner_options": {"test_fault": "segv"}}).json()
    assert crashed["status"] == "runtime_crashed" and crashed["signal"] == "SIGSEGV"
    aborted = post(agent, "/v1/infer", {"digest": digest, "inputs_npz_b64": npz_b64(x=smooth_images(1)),
                                        "runner_options": {"test_fault": "abort"}}).json()
    assert aborted["status"] == "runtime_crashed" and aborted["signal"] == "SIGABRT"
    started = time.monotonic()
    hung = post(agent, "/v1/benchmark", {"digest": digest, "timeout_s": 2,
                                         "runner_options": {"test_fault": "hang"}}).json()
    assert hung["status"] == "timeout" and time.monotonic() - started < 15
    hog = post(agent, "/v1/benchmark", {"digest": digest, "runner_options": {"test_fault": "memory"}}).json()
    assert hog["status"] in ("error", "runtime_crashed") and "MemoryError" in hog["error"]
    assert healthy(agent)
    assert post(agent, "/v1/benchmark", {"digest": digest, "runs": 3}).json()["status"] == "ok"


def test_a_full_queue_answers_429_with_retry_after(agent, onnx_model):
    put(agent, onnx_model)
    body = {"digest": sha(onnx_model), "timeout_s": 1.5, "runner_options": {"test_fault": "hang"}}
    with concurrent.futures.ThreadPoolExecutor(5) as pool:
        replies = list(pool.map(lambda _: post(agent, "/v1/benchmark", body), range(5)))
    busy = [r for r in replies if r.status_code == 429]
    assert busy and all(r.headers["Retry-After"] for r in busy)
    assert all(r.json()["status"] == "timeout" for r in replies if r.status_code == 200)


def test_kill_during_upload_leaves_nothing_partial(tmp_path, onnx_model):
    first = start_agent(tmp_path)
    assert put(first, onnx_model).status_code == 201
    digest = sha(os.urandom(32))
    port = int(first.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(f"PUT /v1/artifacts/{digest} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {first.token}\r\n"
                     f"Content-Length: {len(onnx_model)}\r\n\r\n".encode() + onnx_model[: len(onnx_model) // 2])
        deadline = time.monotonic() + 10
        while not list((first.store / "incoming").iterdir()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert list((first.store / "incoming").iterdir()), "the upload should be in flight"
        first.stop(signal.SIGKILL)
    second = start_agent(tmp_path, store=first.store)
    try:
        listed = httpx.get(f"{second.url}/v1/artifacts", headers=second.headers).json()["artifacts"]
        assert [a["digest"] for a in listed] == [sha(onnx_model)]
        assert not list((second.store / "incoming").iterdir())
        for meta in listed:
            path = second.store / "artifacts" / f"{meta['digest']}.{meta['format']}"
            assert sha(path.read_bytes()) == meta["digest"]
    finally:
        second.stop()


def test_agent_runs_without_torch(tmp_path, onnx_model):
    blocker = tmp_path / "no_torch"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(
        "import sys\nclass _Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'torch' or name.startswith('torch.'):\n"
        "            raise ImportError('torch is blocked for this test')\n"
        "sys.meta_path.insert(0, _Block())\n")
    agent = start_agent(tmp_path, env={"PYTHONPATH": str(blocker)})
    try:
        assert put(agent, onnx_model).status_code == 201
        reply = post(agent, "/v1/benchmark", {"digest": sha(onnx_model), "runs": 5})
        assert reply.json()["status"] == "ok", reply.text
    finally:
        agent.stop()


def test_refuses_a_public_bind_without_token(tmp_path):
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "edgekit.cli", "agent", "serve", "--host", "0.0.0.0", "--no-token",
                             "--store", str(tmp_path / "s")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "without a token" in result.stderr


def test_kserve_v2_metadata_and_infer_match_the_host(agent, onnx_model):
    put(agent, onnx_model)
    digest = sha(onnx_model)
    meta = httpx.get(f"{agent.url}/v2/models/{digest}", headers=agent.headers, timeout=60).json()
    assert meta["platform"] == "onnxruntime_onnx" and meta["inputs"][0]["name"] == "x"
    assert meta["inputs"][0]["shape"] == [1, 3, 8, 8] and meta["inputs"][0]["datatype"] == "FP32"
    image = smooth_images(1, seed=3)
    body = {"id": "r1", "inputs": [{"name": "x", "shape": [1, 3, 8, 8], "datatype": "FP32",
                                    "data": image.ravel().tolist()}]}
    reply = httpx.post(f"{agent.url}/v2/models/{digest}/infer", json=body, headers=agent.headers, timeout=60)
    assert reply.status_code == 200, reply.text
    out = reply.json()
    assert out["id"] == "r1" and out["parameters"]["edgekit_compute_ms"] > 0
    device = np.asarray(out["outputs"][0]["data"], dtype=np.float32).reshape(out["outputs"][0]["shape"])
    np.testing.assert_allclose(device, OnnxRunner(onnx_model).run({"x": image})[0], rtol=1e-5, atol=1e-6)
    bad = dict(body, inputs=[dict(body["inputs"][0], shape=[1, 3, 9, 9])])
    assert httpx.post(f"{agent.url}/v2/models/{digest}/infer", json=bad, headers=agent.headers).status_code == 400
    unknown = httpx.post(f"{agent.url}/v2/models/{'a' * 64}/infer", json=body, headers=agent.headers)
    assert unknown.status_code == 404
    unauthenticated = httpx.post(f"{agent.url}/v2/models/{digest}/infer", json=body)
    assert unauthenticated.status_code == 401
