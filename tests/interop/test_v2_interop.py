"""The agent's Open Inference Protocol endpoint with the clients people use, on a real agent on loopback:
tritonclient HTTP (JSON and binary tensors, its defaults included) and KServe's own Python client (from its own venv,
made by scripts/setup-kserve-client.sh), on the digits sample's FP32 and INT8 ONNX artifacts, compared with this
host's runner. And the bodies no client should send: each gets a short 400/422, never a 500 or the bytes back."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import zlib

import httpx
import numpy as np
import pytest

from edgekit.agent.v2_wire import V2_TYPES, WireError, dump_body, encode_tensors, read_tensors, split_body
from edgekit.runtime.onnxrt import OnnxRunner
from testkit.agent_process import REPO, start_agent

tritonclient = pytest.importorskip("tritonclient.http")  # the dev extra
from tritonclient.utils import InferenceServerException  # noqa: E402

DIGITS = REPO / "samples" / "digits"
KSERVE_PYTHON = REPO / ".venv-kserve" / "bin" / "python"
SAMPLES = 8
UNKNOWN = "0" * 64


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> dict[str, object]:
    """The digits sample exported for x86 as ONNX: FP32 and static INT8 files, and validation samples."""
    from edgekit import export

    out = tmp_path_factory.mktemp("interop") / "digits-x86"
    export(f"{DIGITS / 'model.py'}:build", "x86", out=out, calib=DIGITS / "calib.npz", val=DIGITS / "val.npz",
           format="onnx", benchmark=False)
    with np.load(DIGITS / "val.npz") as val:
        images = val["image"][:SAMPLES]
    return {"fp32": out / "model.fp32.onnx", "int8": out / "model.int8_static.onnx", "images": images}


@pytest.fixture(scope="module")
def agent(tmp_path_factory, digits):
    process = start_agent(tmp_path_factory.mktemp("interop-agent"))
    for precision in ("fp32", "int8"):
        data = digits[precision].read_bytes()
        response = httpx.put(f"{process.url}/v1/artifacts/{hashlib.sha256(data).hexdigest()}", content=data,
                             headers=process.headers, timeout=60)
        assert response.status_code == 201, response.text
    yield process
    process.stop()


@pytest.fixture(scope="module")
def host(digits) -> dict[str, dict]:
    """Per precision: the digest, and this host's outputs of each sample (1 thread, like the agent's session)."""
    results = {}
    for precision in ("fp32", "int8"):
        runner = OnnxRunner(digits[precision], threads=1)
        outputs = [runner.run({"image": image[None]})[0] for image in digits["images"]]
        results[precision] = {"digest": hashlib.sha256(digits[precision].read_bytes()).hexdigest(),
                              "output": runner.output_names[0], "outputs": np.concatenate(outputs)}
    return results


def triton(agent):
    return tritonclient.InferenceServerClient(agent.url.removeprefix("http://"), network_timeout=60)


def auth(agent) -> dict[str, str]:
    """A fresh dict per call: tritonclient writes its own headers into the dict it is given."""
    return dict(agent.headers)


# -- tritonclient ---------------------------------------------------------------------------------------------------

def test_tritonclient_server_and_model_routes(agent, host):
    client, digest = triton(agent), host["fp32"]["digest"]
    assert client.is_server_live()  # no token: the liveness check, like /v1/health
    assert client.is_server_ready(headers=auth(agent))
    metadata = client.get_server_metadata(headers=auth(agent))
    assert metadata["name"] == "edgekit" and "binary_tensor_data" in metadata["extensions"]
    assert client.is_model_ready(digest, headers=auth(agent))
    assert client.is_model_ready(digest, "1", headers=auth(agent))
    assert not client.is_model_ready(digest, "2", headers=auth(agent))
    assert not client.is_model_ready(UNKNOWN, headers=auth(agent))
    model = client.get_model_metadata(digest, headers=auth(agent))
    assert model["platform"] == "onnxruntime_onnx" and model["versions"] == ["1"]
    assert model["inputs"] == [{"name": "image", "datatype": "FP32", "shape": [1, 1, 8, 8]}]
    assert model["outputs"] == [{"name": host["fp32"]["output"], "datatype": "FP32", "shape": [1, 10]}]
    assert client.get_model_metadata(digest, "1", headers=auth(agent))["name"] == digest
    assert not client.is_server_ready(headers={"Authorization": "Bearer wrong"})
    with pytest.raises(InferenceServerException) as refused:
        client.get_server_metadata(headers={"Authorization": "Bearer wrong"})
    assert refused.value.status() == "401" and "token" in refused.value.message()


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_tritonclient_default_infer_matches_the_host(agent, digits, host, precision, binary):
    """``infer`` with the client's defaults: no Content-Type, ``binary_data_output`` asked for; the input as JSON
    (``binary_data=False``) or binary (the client's default)."""
    client, expected = triton(agent), host[precision]
    outputs = []
    for image in digits["images"]:
        tensor = tritonclient.InferInput("image", [1, 1, 8, 8], "FP32")
        tensor.set_data_from_numpy(image[None], binary_data=binary)
        result = client.infer(expected["digest"], [tensor], headers=auth(agent))
        entry = result.get_output(expected["output"])
        assert entry["parameters"]["binary_data_size"] == 10 * 4 and "data" not in entry
        assert result.get_response()["parameters"]["edgekit_compute_ms"] > 0
        outputs.append(result.as_numpy(expected["output"]))
    served = np.concatenate(outputs)
    assert served.dtype == np.float32 and served.shape == expected["outputs"].shape == (SAMPLES, 10)
    np.testing.assert_allclose(served, expected["outputs"], rtol=1e-6, atol=1e-6)
    assert (served.argmax(1) == expected["outputs"].argmax(1)).all()


def test_tritonclient_json_outputs_named_version_and_compressed_requests(agent, digits, host):
    client, expected = triton(agent), host["int8"]
    image = digits["images"][:1]
    for compression in ("gzip", "deflate", None):
        tensor = tritonclient.InferInput("image", [1, 1, 8, 8], "FP32")
        tensor.set_data_from_numpy(image)
        result = client.infer(expected["digest"], [tensor], model_version="1", request_id="req-7",
                              outputs=[tritonclient.InferRequestedOutput(expected["output"], binary_data=False)],
                              request_compression_algorithm=compression, sequence_id=3, priority=1,
                              timeout=30_000_000, parameters={"note": "ignored"}, headers=auth(agent))
        entry = result.get_output(expected["output"])
        assert "data" in entry and "parameters" not in entry and result.get_response()["id"] == "req-7"
        np.testing.assert_allclose(result.as_numpy(expected["output"]), expected["outputs"][:1], rtol=1e-6,
                                   atol=1e-6)


@pytest.mark.parametrize("case, status, words", [
    ("FP64 input", "400", ["FP64", "FP32[1, 1, 8, 8]"]),
    ("wrong input name", "400", ["do not match", "image"]),
    ("unknown output", "400", ["no output 'nope'"]),
    ("classification", "400", ["classification extension"]),
    ("version 2", "404", ["version"]),
    ("unknown model", "404", ["no model"]),
])
def test_tritonclient_gets_the_agents_reason_for_a_refusal(agent, digits, host, case, status, words):
    client, expected = triton(agent), host["fp32"]
    image, name, outputs, model, version = digits["images"][:1], "image", None, expected["digest"], ""
    datatype = "FP32"
    if case == "FP64 input":
        image, datatype = image.astype(np.float64), "FP64"
    elif case == "wrong input name":
        name = "pixels"
    elif case == "unknown output":
        outputs = [tritonclient.InferRequestedOutput("nope")]
    elif case == "classification":
        outputs = [tritonclient.InferRequestedOutput(expected["output"], class_count=3)]
    elif case == "version 2":
        version = "2"
    else:
        model = UNKNOWN
    tensor = tritonclient.InferInput(name, [1, 1, 8, 8], datatype)
    tensor.set_data_from_numpy(image)
    with pytest.raises(InferenceServerException) as refused:
        client.infer(model, [tensor], model_version=version, outputs=outputs, headers=auth(agent))
    assert refused.value.status() == status
    assert all(word in refused.value.message() for word in words), refused.value.message()


# -- KServe's own client ---------------------------------------------------------------------------------------------

def test_kserve_client_json_and_binary_match_the_host(agent, digits, host, tmp_path):
    if not KSERVE_PYTHON.is_file():
        message = f"KServe's client is not installed at {KSERVE_PYTHON}: run scripts/setup-kserve-client.sh"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    np.savez(tmp_path / "inputs.npz", image=digits["images"])
    for precision in ("fp32", "int8"):
        expected, out = host[precision], tmp_path / f"{precision}.npz"
        run = subprocess.run([str(KSERVE_PYTHON), str(REPO / "testkit" / "kserve_client_check.py"), agent.url,
                              agent.token, expected["digest"], str(tmp_path / "inputs.npz"), str(out)],
                             capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stderr[-3000:]
        with np.load(out) as served:
            assert served["ready_server_live"] and served["ready_server"] and served["ready_model"]
            assert not served["ready_unknown_model"]
            for encoding in ("json", "binary"):
                outputs = served[f"{encoding}_{expected['output']}"]
                assert outputs.dtype == np.float32 and outputs.shape == (SAMPLES, 10)
                np.testing.assert_allclose(outputs, expected["outputs"], rtol=1e-6, atol=1e-6)


# -- the wire format, both ways ---------------------------------------------------------------------------------------

def test_every_datatype_survives_json_and_binary_round_trips():
    rng = np.random.default_rng(0)
    arrays = {name: (rng.integers(0, 2, (2, 3)).astype(bool) if dtype == "bool" else
                     rng.integers(np.iinfo(dtype).min, np.iinfo(dtype).max, (2, 3), dtype=dtype, endpoint=True)
                     if np.dtype(dtype).kind in "iu" else rng.standard_normal((2, 3)).astype(dtype))
              for name, dtype in V2_TYPES.items()}
    for binary in (False, True):
        entries, chunks = encode_tensors([(name, array, binary) for name, array in arrays.items()])
        body, length = dump_body({"outputs": entries}, chunks)
        header, tail = split_body(body, None if length is None else str(length))
        decoded = read_tensors(json.loads(header)["outputs"], tail, "output")
        for (name, array), back in zip(arrays.items(), decoded):
            assert back.dtype == array.dtype and np.array_equal(back, array), name
    with pytest.raises(WireError, match="1 bytes of binary data after"):
        read_tensors(entries, tail + b"\0", "output")
    with pytest.raises(WireError, match="binary data ends"):
        read_tensors(entries, tail[:-1], "output")


# -- bodies no client should send ------------------------------------------------------------------------------------

NESTED = b"[" * 100_000 + b"]" * 100_000
BODIES = {"not UTF-8": b"\x80\x81\xff", "deep nesting": NESTED, "UTF-16 with a lone surrogate": '{"\ud800": 1}'
          .encode("utf-16", "surrogatepass"), "a JSON array": b"[1, 2]", "empty": b"",
          "gzip bomb": zlib.compress(b"[" * (65 * 1024 * 1024), 9)}


@pytest.mark.parametrize("content_type", [None, "application/json", "text/plain", "application/octet-stream"])
@pytest.mark.parametrize("body", list(BODIES), ids=list(BODIES))
def test_malformed_bodies_get_a_short_4xx_without_their_bytes(agent, host, body, content_type):
    digest = host["fp32"]["digest"]
    headers = {**agent.headers, **({"Content-Type": content_type} if content_type else {})}
    if body == "gzip bomb":
        headers["Content-Encoding"] = "deflate"
    for path in ("/v1/benchmark", "/v1/infer", f"/v2/models/{digest}/infer", f"/v2/models/{digest}/versions/1/infer"):
        response = httpx.post(agent.url + path, content=BODIES[body], headers=headers, timeout=60)
        assert response.status_code in (400, 413, 422), (path, response.status_code, response.text[:300])
        assert response.headers["content-type"] == "application/json" and response.content.isascii()
        detail = response.json()["detail"]
        assert isinstance(detail, str) and len(detail) < 300 and "\\x" not in detail, detail
        if path.startswith("/v2/"):
            assert response.json()["error"] == detail  # where v2 clients read it
    assert httpx.get(f"{agent.url}/v1/health", timeout=10).status_code == 200


def test_runners_declare_the_outputs_they_return(tmp_path):
    """What v2 metadata reports: floating outputs as FP32, integer outputs as they are, dynamic dims as -1."""
    import onnx
    from onnx import TensorProto, helper

    from edgekit.agent.kserve_v2 import _tensor_metadata
    from edgekit.runtime.openvino import OpenVinoRunner, load_openvino

    graph = helper.make_graph(
        [helper.make_node("ArgMax", ["x"], ["label"], axis=1, keepdims=0),
         helper.make_node("Cast", ["x"], ["scores"], to=TensorProto.DOUBLE)], "two_outputs",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("label", TensorProto.INT64, ["batch"]),
         helper.make_tensor_value_info("scores", TensorProto.DOUBLE, ["batch", 4])])
    path = tmp_path / "two_outputs.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    ov = load_openvino()
    ov.save_model(ov.convert_model(str(path)), str(tmp_path / "two_outputs.xml"))
    expected = [{"name": "label", "datatype": "INT64", "shape": [-1]},
                {"name": "scores", "datatype": "FP32", "shape": [-1, 4]}]
    for runner in (OnnxRunner(path), OpenVinoRunner(tmp_path / "two_outputs.xml")):
        specs = runner.output_specs()
        assert [_tensor_metadata(name, specs[name]) for name in runner.output_names] == expected, runner
        label, scores = runner.run({"x": np.array([[0, 3, 1, 2]], dtype=np.float32)})
        assert label.dtype == np.int64 and scores.dtype == np.float32  # what the specs say run() returns
