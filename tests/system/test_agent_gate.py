"""The agent on a real network: the token before the body, bounded bodies and connections, short error answers."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time

import httpx
import numpy as np
import pytest

from testkit.agent_process import start_agent


def rss_mb(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def tiny_onnx(string_output: bool = False) -> bytes:
    """y = x + 1 on float[1, 3]; with ``string_output`` also s = Cast(x, STRING)."""
    import onnx
    from onnx import TensorProto, helper

    nodes = [helper.make_node("Add", ["x", "one"], ["y"])]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])]
    if string_output:
        nodes.append(helper.make_node("Cast", ["x"], ["s"], to=TensorProto.STRING))
        outputs.append(helper.make_tensor_value_info("s", TensorProto.STRING, [1, 3]))
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])], outputs,
                              [helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    onnx.checker.check_model(model)
    return model.SerializeToString()


@pytest.fixture(scope="module")
def agent(tmp_path_factory):
    process = start_agent(tmp_path_factory.mktemp("gate"), "--header-timeout-s", "2", "--max-idle-connections", "40")
    yield process
    process.stop()


def upload(agent, data: bytes) -> str:
    digest = hashlib.sha256(data).hexdigest()
    reply = httpx.put(f"{agent.url}/v1/artifacts/{digest}", content=data, headers=agent.headers, timeout=60)
    assert reply.status_code in (200, 201), reply.text
    return digest


def raw_request(agent, head: str, body: bytes = b"", read_timeout: float = 10) -> bytes:
    """The agent's reply to ``head`` and as much of ``body`` as it takes: one that answers and closes without
    reading a big body resets the connection under the sender (a broken pipe), its reply already on the way."""
    port = int(agent.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=read_timeout) as sock:
        try:
            sock.sendall(head.encode() + body)
        except (BrokenPipeError, ConnectionResetError):
            pass
        return sock.recv(65536)


def test_unauthenticated_big_bodies_are_401_unread_and_cost_no_memory(agent):
    before = rss_mb(agent.process.pid)
    started = time.monotonic()
    for path in ["/v1/benchmark", "/v2/models/" + "0" * 64 + "/infer", "/v1/artifacts/" + "0" * 64] * 3:
        method = "PUT" if path.startswith("/v1/artifacts") else "POST"
        reply = raw_request(agent, f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {60 << 20}\r\n\r\n",
                            b"x" * (1 << 20))
        assert reply.startswith(b"HTTP/1.1 401 ") and b"connection: close" in reply.lower(), reply[:200]
    assert time.monotonic() - started < 10
    assert rss_mb(agent.process.pid) - before < 20


def test_bad_json_without_token_is_401_and_with_it_400(agent):
    for path in ["/v1/benchmark", "/v2/models/" + "0" * 64 + "/infer"]:
        assert httpx.post(agent.url + path, content=b"{not json").status_code == 401
        assert httpx.post(agent.url + path, content=b"{not json", headers=agent.headers).status_code in (400, 404, 422)


def test_declared_and_streamed_bodies_over_the_cap_are_413(agent):
    over = raw_request(agent, f"POST /v1/infer HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {agent.token}\r\n"
                              f"Content-Length: {(64 << 20) + 1}\r\n\r\n")
    assert over.startswith(b"HTTP/1.1 413 ")
    no_length = raw_request(agent, f"POST /v1/infer HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {agent.token}\r\n"
                                   "Transfer-Encoding: chunked\r\n\r\n")
    assert no_length.startswith(b"HTTP/1.1 411 ")

    def chunks():  # 600 MiB announced nowhere: the upload cap (512 MiB) stops it while it streams
        block = b"\0" * (1 << 20)
        for _ in range(600):
            yield block

    reply = httpx.put(f"{agent.url}/v1/artifacts/{'0' * 64}", content=chunks(), headers=agent.headers, timeout=120)
    assert reply.status_code == 413 and "byte limit" in reply.json()["detail"]
    assert not list((agent.store / "incoming").iterdir())


def test_half_open_connections_are_closed_and_capped_while_health_answers(agent):
    port = int(agent.url.rsplit(":", 1)[1])
    fds_before = len(os.listdir(f"/proc/{agent.process.pid}/fd"))
    silent = [socket.create_connection(("127.0.0.1", port)) for _ in range(50)]
    partial = [socket.create_connection(("127.0.0.1", port)) for _ in range(50)]
    try:
        for sock in partial:
            sock.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n")  # half a header, never finished
        started = time.monotonic()
        assert httpx.get(f"{agent.url}/v1/health", timeout=5).status_code == 200
        assert time.monotonic() - started < 1
        closed_early = sum(_closed(sock, 0.05) for sock in partial)
        assert closed_early >= 50 - 40  # past --max-idle-connections 40 the longest waiting are closed
        # silent connections never reach the agent (TCP_DEFER_ACCEPT): at most the 40 partial ones hold a file
        assert len(os.listdir(f"/proc/{agent.process.pid}/fd")) - fds_before <= 40 + 2
        time.sleep(3)  # --header-timeout-s 2
        assert all(_closed(sock, 1) for sock in partial)
    finally:
        for sock in silent + partial:
            sock.close()


def _closed(sock: socket.socket, timeout: float) -> bool:
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except socket.timeout:
        return False
    except OSError:
        return True


def test_keep_alive_connections_serve_several_requests(agent):
    with httpx.Client(headers=agent.headers) as client:
        for _ in range(3):
            assert client.get(f"{agent.url}/v1/artifacts").status_code == 200


def test_a_shape_with_a_huge_element_count_is_a_short_400(agent):
    digest = upload(agent, tiny_onnx())
    huge = 10**4000
    body = ('{"inputs":[{"name":"x","datatype":"FP32","shape":[' + ",".join([str(huge)] * 16) + '],"data":[1]}]}')
    reply = httpx.post(f"{agent.url}/v2/models/{digest}/infer", content=body, headers=agent.headers, timeout=30)
    assert reply.status_code == 400 and len(reply.content) < 1000, reply.text[:300]
    assert "over 16777216 elements" in reply.json()["error"]


def test_string_outputs_are_bytes_in_metadata_and_answers(agent):
    digest = upload(agent, tiny_onnx(string_output=True))
    meta = httpx.get(f"{agent.url}/v2/models/{digest}", headers=agent.headers, timeout=60).json()
    assert [(o["name"], o["datatype"]) for o in meta["outputs"]] == [("y", "FP32"), ("s", "BYTES")]
    body = {"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1.5, 2, -3]}]}
    reply = httpx.post(f"{agent.url}/v2/models/{digest}/infer", json=body, headers=agent.headers, timeout=60)
    assert reply.status_code == 200, reply.text
    y, s = reply.json()["outputs"]
    assert y["data"] == [2.5, 3, -2] and s["datatype"] == "BYTES" and s["shape"] == [1, 3]
    assert [float(v) for v in s["data"]] == [1.5, 2, -3]
    binary = {**body, "parameters": {"binary_data_output": True}}
    reply = httpx.post(f"{agent.url}/v2/models/{digest}/infer", json=binary, headers=agent.headers, timeout=60)
    header_length = int(reply.headers["Inference-Header-Content-Length"])
    header = json.loads(reply.content[:header_length])
    tail = reply.content[header_length:]
    assert header["outputs"][1]["parameters"]["binary_data_size"] == len(tail) - 12
    strings, offset = [], 12
    while offset < len(tail):
        size = int.from_bytes(tail[offset:offset + 4], "little")
        strings.append(tail[offset + 4:offset + 4 + size].decode())
        offset += 4 + size
    assert [float(v) for v in strings] == [1.5, 2, -3]
    np.testing.assert_array_equal(np.frombuffer(tail[:12], "<f4"), [2.5, 3, -2])


def test_a_one_microsecond_timeout_neither_fails_nor_restarts_the_model(agent):
    digest = upload(agent, tiny_onnx())
    body = {"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [0, 1, 2]}],
            "parameters": {"timeout": 1}}
    for _ in range(3):
        reply = httpx.post(f"{agent.url}/v2/models/{digest}/infer", json=body, headers=agent.headers, timeout=60)
        assert reply.status_code == 200, reply.text
        assert reply.json()["outputs"][0]["data"] == [1, 2, 3]
    sessions = _session_pids(agent)
    httpx.post(f"{agent.url}/v2/models/{digest}/infer", json=body, headers=agent.headers, timeout=60)
    assert _session_pids(agent) == sessions  # the same model process answered


def _session_pids(agent) -> set[int]:
    children = open(f"/proc/{agent.process.pid}/task/{agent.process.pid}/children").read().split()
    return {int(pid) for pid in children}
