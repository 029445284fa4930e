"""HTTPS for an agent off loopback: a self-signed certificate made once, its fingerprint printed with the token,
pinned by edgekit's client (a mismatch fails before the token is sent), and usable by tritonclient."""

from __future__ import annotations

import hashlib
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from test_agent_gate import tiny_onnx

from edgekit.agent.client import AgentClient, AgentError, resolve_token
from edgekit.agent.tls import CERT_NAME, KEY_NAME, format_fingerprint, parse_fingerprint, server_tls
from edgekit.errors import InputError
from testkit.agent_process import REPO, free_port

CLI = [sys.executable, "-m", "edgekit.cli"]


class TlsAgent:
    def __init__(self, folder: Path, *args: str):
        self.folder, self.port = folder, free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.log = folder / f"agent-{self.port}.log"
        self.process = subprocess.Popen([*CLI, "agent", "serve", "--port", str(self.port), "--store",
                                         str(folder / "store"), "--token-file", str(folder / "state" / "token"),
                                         *args], stdout=open(self.log, "wb"), stderr=subprocess.STDOUT, cwd=REPO)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()
            try:
                httpx.get(f"{self.url}/v1/health", verify=False, timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise AssertionError("no HTTPS agent in 30 s")

    def token_file(self, folder: Path) -> Path:
        printed = subprocess.run([*CLI, "agent", "token", "--token-file", str(self.folder / "state" / "token")],
                                 capture_output=True, text=True, timeout=60, check=True).stdout
        path = folder / "device.token"
        path.write_text(printed)
        return path

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=20)


@pytest.fixture(scope="module")
def agent(tmp_path_factory):
    started = TlsAgent(tmp_path_factory.mktemp("tls"), "--tls")
    yield started
    started.stop()


def test_the_certificate_is_made_once_private_and_announced(agent):
    state = agent.folder / "state"
    for name in (KEY_NAME, CERT_NAME):
        assert (state / name).stat().st_mode & 0o777 == 0o600
    der = ssl.PEM_cert_to_DER_cert((state / CERT_NAME).read_text())
    fingerprint = format_fingerprint(hashlib.sha256(der).digest())
    assert f"listening on https://127.0.0.1:{agent.port} (TLS certificate {fingerprint})" in agent.log.read_text()
    presented = ssl.get_server_certificate(("127.0.0.1", agent.port))
    assert ssl.PEM_cert_to_DER_cert(presented) == der


def test_the_token_file_pins_the_certificate_for_edgekits_client(agent, tmp_path):
    token_file = agent.token_file(tmp_path)
    lines = token_file.read_text().splitlines()
    assert len(lines) == 2 and lines[1].startswith("tls-fingerprint: SHA256:")
    token = resolve_token(token_file=token_file)
    assert token.fingerprint == lines[1].split(": ", 1)[1]
    with AgentClient(agent.url, token) as client:
        assert client.health()["agent"] == "edgekit"
        digest = client.upload(_model(tmp_path))["digest"]
        assert digest in [a["digest"] for a in client.list()]
        reply = client.infer(digest, {"x": np.array([[1, 2, 3]], np.float32)})
    np.testing.assert_allclose(reply[0], [[2, 3, 4]])


def test_a_wrong_fingerprint_fails_before_anything_is_sent(agent, tmp_path):
    token_file = agent.token_file(tmp_path)
    real = token_file.read_text().splitlines()
    wrong = format_fingerprint(bytes(32))
    token_file.write_text(f"{real[0]}\ntls-fingerprint: {wrong}\n")
    with AgentClient(agent.url, resolve_token(token_file=token_file)) as client:
        with pytest.raises(AgentError) as caught:
            client.info()
    assert f"not the pinned {wrong}" in str(caught.value) and "nothing was sent" in str(caught.value)
    assert "copy the new token file" in caught.value.hint
    # an impostor with the agent's certificate swapped for its own receives no request, so no token
    impostor = server_tls("192.0.2.9", cert=None, key=None, insecure_http=False, force_tls=False,
                          folder=tmp_path / "impostor")
    received = _listen_once(impostor, lambda port: AgentClient(f"https://127.0.0.1:{port}", token_file.read_text()
                                                               .splitlines()[0], fingerprint=real[1].split(": ")[1]))
    assert received == b""
    with AgentClient(agent.url, real[0]) as client:  # no pin: a self-signed certificate is not trusted
        with pytest.raises(AgentError, match="not trusted by this machine"):
            client.health()
    with pytest.raises(InputError, match="plain HTTP"):
        AgentClient(agent.url.replace("https", "http"), real[0], fingerprint=real[1].split(": ")[1])


def test_a_restart_keeps_the_certificate_and_plain_http_is_refused_on_the_tls_port(tmp_path):
    first = TlsAgent(tmp_path, "--tls")
    first.stop()
    fingerprint = (tmp_path / "state" / CERT_NAME).read_bytes()
    second = TlsAgent(tmp_path, "--tls")
    try:
        assert (tmp_path / "state" / CERT_NAME).read_bytes() == fingerprint
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{second.port}/v1/health", timeout=5)
    finally:
        second.stop()


def test_off_loopback_is_https_unless_insecure_http_is_explicit(tmp_path):
    made = server_tls("192.0.2.7", cert=None, key=None, insecure_http=False, force_tls=False, folder=tmp_path / "a")
    assert made is not None and made.cert == tmp_path / "a" / CERT_NAME
    assert server_tls("192.0.2.7", cert=None, key=None, insecure_http=True, force_tls=False, folder=tmp_path) is None
    assert server_tls("127.0.0.1", cert=None, key=None, insecure_http=False, force_tls=False, folder=tmp_path) is None
    own = server_tls("127.0.0.1", cert=made.cert, key=made.key, insecure_http=False, force_tls=False,
                     folder=tmp_path / "unused")
    assert own.fingerprint == made.fingerprint and not (tmp_path / "unused").exists()
    result = subprocess.run([*CLI, "agent", "serve", "--tls-cert", str(made.cert), "--store", str(tmp_path / "s"),
                             "--port", str(free_port())], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "--tls-cert and --tls-key go together" in result.stderr
    assert parse_fingerprint(made.fingerprint.replace("SHA256:", "sha256 Fingerprint=")) == parse_fingerprint(
        made.fingerprint.replace(":", "").removeprefix("SHA256"))


def test_tritonclient_over_tls_trusting_exactly_the_agents_certificate(agent, tmp_path):
    tritonclient = pytest.importorskip("tritonclient.http")
    import gevent.ssl

    token = resolve_token(token_file=agent.token_file(tmp_path))
    digest = AgentClient(agent.url, token).upload(_model(tmp_path))["digest"]
    cert = (agent.folder / "state" / CERT_NAME).read_text()

    def context():  # the agent's own certificate as the only trust anchor (its names include 127.0.0.1)
        made = gevent.ssl.create_default_context(cadata=cert)
        return made

    client = tritonclient.InferenceServerClient(f"127.0.0.1:{agent.port}", ssl=True, ssl_context_factory=context,
                                                network_timeout=60)
    headers = {"Authorization": f"Bearer {token}"}
    assert client.is_server_live()
    tensor = tritonclient.InferInput("x", [1, 3], "FP32")
    tensor.set_data_from_numpy(np.array([[1, 2, 3]], np.float32), binary_data=True)
    result = client.infer(digest, [tensor], headers=headers)
    np.testing.assert_allclose(result.as_numpy("y"), [[2, 3, 4]])
    client.close()


def test_validate_pins_the_fingerprint_given_on_the_command_line(agent, tmp_path):
    printed = agent.token_file(tmp_path).read_text().splitlines()
    token_only = tmp_path / "token-only"
    token_only.write_text(printed[0] + "\n")  # a token file from before TLS: the pin comes from --fingerprint
    art = tmp_path / "art"
    subprocess.run([*CLI, "export", str(_model(tmp_path)), "--format", "onnx", "--no-benchmark", "--out", str(art)],
                   check=True, capture_output=True, timeout=300)
    fast = ["--runs", "3", "--warmup", "0", "--min-seconds", "0"]
    pinned = subprocess.run([*CLI, "validate", str(art), "--agent", agent.url, "--token-file", str(token_only),
                             "--fingerprint", printed[1].split(": ", 1)[1], *fast], capture_output=True, text=True,
                            timeout=300)
    assert pinned.returncode == 0, pinned.stderr
    wrong = subprocess.run([*CLI, "validate", str(art), "--agent", agent.url, "--token-file", str(token_only),
                            "--fingerprint", format_fingerprint(bytes(32)), *fast], capture_output=True, text=True,
                           timeout=300)
    assert wrong.returncode == 6 and "not the pinned" in wrong.stderr, wrong.stderr


def _model(folder: Path) -> Path:
    path = folder / "tiny.onnx"
    path.write_bytes(tiny_onnx())
    return path


def _listen_once(tls, make_client) -> bytes:
    """What a TLS server with ``tls`` receives after the handshake from one ``health()`` call of a client."""
    import socket
    import threading

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls.cert, tls.key)
    listener = socket.create_server(("127.0.0.1", 0))
    received = []

    def serve():
        conn, _ = listener.accept()
        try:
            with context.wrap_socket(conn, server_side=True) as wrapped:
                wrapped.settimeout(5)
                received.append(wrapped.recv(65536))
        except (OSError, ssl.SSLError):
            received.append(b"")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    with make_client(listener.getsockname()[1]) as client, pytest.raises(AgentError, match="not the pinned"):
        client.health()
    thread.join(10)
    listener.close()
    return received[0]
