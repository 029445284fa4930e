"""The agent under load and attack at once: does it keep answering, without 5xx, without growing?

Starts a real agent on loopback (fresh store and token; ``--tls`` for HTTPS with a pinned certificate), uploads a
tiny ONNX model (y = x + 1 on float[1, 64], built here) and, for ``--seconds``:

- ``--clients`` authenticated clients (default 12) loop over a mix: v1 ``/v1/infer`` (npz), v2 JSON infer, v2
  binary infer (the binary tensor extension), v1 artifact list/HEAD and ``/v2/health/ready``;
- ``--big-bodies`` unauthenticated clients (default 8) each send, again and again, a request announcing a 60 MB
  body and stream it until the agent hangs up;
- ``--half-open`` connections (default 2,000) are held open with nothing or half a request header sent, and
  reopened as the agent closes them;
- a prober times ``GET /v1/health`` every 0.2 s.

It prints the answers by status (5xx should be 0; 429 means "busy", by design one model run at a time), outputs
checked against x + 1, the agent's RSS (start, peak, end: growth should stay small), and the health latency
(p50, p99, max). Everything goes to 127.0.0.1 only; every loop ends at ``--seconds``.

    .venv/bin/python bench/agent_load.py [--seconds 120] [--clients 12] [--big-bodies 8] [--half-open 2000] [--tls]
    .venv/bin/python bench/agent_load.py --quick      # 20 s, for a check
"""

from __future__ import annotations

import argparse
import base64
import collections
import hashlib
import io
import json
import os
import resource
import selectors
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

REPO = Path(__file__).resolve().parent.parent
WIDTH = 64
BIG_BODY = 60 * 1024 * 1024


def tiny_model() -> bytes:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Add", ["x", "one"], ["y"])], "load",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, WIDTH])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, WIDTH])],
                              [helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8).SerializeToString()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rss_mb(pid: int) -> float:
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


class Agent:
    def __init__(self, folder: Path, tls: bool):
        self.port = free_port()
        self.log = folder / "agent.log"
        command = [sys.executable, "-m", "edgekit.cli", "agent", "serve", "--port", str(self.port), "--store",
                   str(folder / "store"), "--token-file", str(folder / "state" / "token"), *(["--tls"] if tls else [])]
        self.process = subprocess.Popen(command, stdout=open(self.log, "wb"), stderr=subprocess.STDOUT, cwd=REPO)
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"the agent exited: {self.log.read_text()}")
            try:
                httpx.get(f"{self.url}/v1/health", verify=False, timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        printed = subprocess.run([sys.executable, "-m", "edgekit.cli", "agent", "token", "--token-file",
                                  str(folder / "state" / "token")], capture_output=True, text=True, check=True)
        (folder / "client.token").write_text(printed.stdout)
        from edgekit.agent.client import resolve_token

        self.token = resolve_token(token_file=folder / "client.token")
        self.verify = True
        if tls:
            from edgekit.agent.tls import pinned_context

            self.verify = pinned_context(self.token.fingerprint)

    def client(self, token: bool = True) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, verify=self.verify, timeout=60)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


class Tally:
    def __init__(self):
        self.lock = threading.Lock()
        self.codes: collections.Counter = collections.Counter()
        self.wrong = 0
        self.errors: collections.Counter = collections.Counter()

    def add(self, kind: str, code: int) -> None:
        with self.lock:
            self.codes[(kind, code)] += 1

    def error(self, kind: str, exc: Exception) -> None:
        with self.lock:
            self.errors[(kind, type(exc).__name__)] += 1


def npz_b64(**arrays) -> str:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return base64.b64encode(buffer.getvalue()).decode()


def client_loop(agent: Agent, digest: str, tally: Tally, stop: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    with agent.client() as http:
        step = seed
        while time.monotonic() < stop:
            x = rng.standard_normal((1, WIDTH)).astype(np.float32)
            kind = ("v1_infer", "v2_json", "v2_binary", "v1_list", "v2_ready")[step % 5]
            step += 1
            try:
                if kind == "v1_infer":
                    reply = http.post("/v1/infer", json={"digest": digest, "inputs_npz_b64": npz_b64(x=x)})
                    if reply.status_code == 200:
                        body = reply.json()
                        with np.load(io.BytesIO(base64.b64decode(body["outputs_npz_b64"]))) as npz:
                            tally.wrong += not np.allclose(npz["output_0"], x + 1)
                elif kind == "v2_json":
                    body = {"inputs": [{"name": "x", "shape": [1, WIDTH], "datatype": "FP32",
                                        "data": x.ravel().tolist()}]}
                    reply = http.post(f"/v2/models/{digest}/infer", json=body)
                    if reply.status_code == 200:
                        tally.wrong += not np.allclose(reply.json()["outputs"][0]["data"], (x + 1).ravel())
                elif kind == "v2_binary":
                    header = json.dumps({"inputs": [{"name": "x", "shape": [1, WIDTH], "datatype": "FP32",
                                                     "parameters": {"binary_data_size": x.nbytes}}],
                                         "parameters": {"binary_data_output": True}}).encode()
                    reply = http.post(f"/v2/models/{digest}/infer", content=header + x.tobytes(),
                                      headers={"Inference-Header-Content-Length": str(len(header))})
                    if reply.status_code == 200:
                        length = int(reply.headers["Inference-Header-Content-Length"])
                        tally.wrong += not np.allclose(np.frombuffer(reply.content[length:], "<f4"), (x + 1).ravel())
                elif kind == "v1_list":
                    reply = http.get("/v1/artifacts")
                    http.head(f"/v1/artifacts/{digest}")
                else:
                    reply = http.get("/v2/health/ready")
                tally.add(kind, reply.status_code)
                if reply.status_code == 429:
                    time.sleep(min(float(reply.headers.get("Retry-After", "1")), 0.2))
            except httpx.HTTPError as exc:
                tally.error(kind, exc)
                time.sleep(0.1)


def big_body_loop(agent: Agent, tally: Tally, stop: float, index: int) -> None:
    """Unauthenticated: announce 60 MB and keep sending until the agent answers and hangs up."""
    paths = ["/v1/benchmark", "/v1/infer", f"/v2/models/{'0' * 64}/infer", f"/v1/artifacts/{'0' * 64}"]
    block = b"\0" * (1 << 20)
    count = 0
    while time.monotonic() < stop:
        path = paths[(index + count) % len(paths)]
        method = "PUT" if path.startswith("/v1/artifacts") else "POST"
        count += 1
        try:
            with socket.create_connection(("127.0.0.1", agent.port), timeout=10) as raw:
                sock = raw
                if agent.url.startswith("https"):
                    import ssl

                    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
                    sock = context.wrap_socket(raw)
                try:
                    sock.sendall(f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                 f"Content-Length: {BIG_BODY}\r\n\r\n".encode())
                    sent = 0
                    while sent < BIG_BODY and time.monotonic() < stop:
                        sock.sendall(block)
                        sent += len(block)
                except OSError:  # the agent answered and hung up while the body was still coming: the point
                    pass
                tally.add("unauth_60MB", _status(sock))
        except OSError as exc:
            tally.error("unauth_60MB", exc)
        time.sleep(0.05)


def _status(sock) -> int:
    """The status of the answer waiting on ``sock`` (0 when the connection was cut before one arrived)."""
    try:
        sock.settimeout(2)
        answer = sock.recv(200)
    except OSError:
        return 0
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0


def half_open_loop(agent: Agent, count: int, stop: float, stats: dict) -> None:
    """Hold ``count`` connections that never finish a header; reopen those the agent closes."""
    selector = selectors.DefaultSelector()
    opened = closed = 0

    def open_one(i: int) -> None:
        nonlocal opened
        try:
            sock = socket.create_connection(("127.0.0.1", agent.port), timeout=2)
        except OSError:
            return
        if i % 2:
            sock.sendall(b"GET /v1/info HTTP/1.1\r\nHost: x\r\nAuthoriz")
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ, i)
        opened += 1

    for i in range(count):
        open_one(i)
        if time.monotonic() > stop:
            break
    stats["peak_open"] = len(selector.get_map())
    while time.monotonic() < stop:
        for key, _ in selector.select(timeout=0.5):
            try:
                data = key.fileobj.recv(4096)
            except OSError:
                data = b""
            if not data:
                selector.unregister(key.fileobj)
                key.fileobj.close()
                closed += 1
                if time.monotonic() < stop and opened < count * 20:  # bounded churn
                    open_one(key.data)
        stats["peak_open"] = max(stats["peak_open"], len(selector.get_map()))
    for key in list(selector.get_map().values()):
        key.fileobj.close()
    stats.update(opened=opened, closed_by_agent=closed)


def health_loop(agent: Agent, stop: float, latencies: list[float], failures: list[str]) -> None:
    with agent.client(token=False) as http:
        while time.monotonic() < stop:
            started = time.perf_counter()
            try:
                reply = http.get("/v1/health", timeout=30)
                latencies.append((time.perf_counter() - started) * 1e3)
                if reply.status_code != 200:
                    failures.append(str(reply.status_code))
            except httpx.HTTPError as exc:
                failures.append(type(exc).__name__)
            time.sleep(0.2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--clients", type=int, default=12)
    parser.add_argument("--big-bodies", type=int, default=8)
    parser.add_argument("--half-open", type=int, default=2000)
    parser.add_argument("--tls", action="store_true", help="HTTPS (the agent's own certificate, pinned)")
    parser.add_argument("--quick", action="store_true", help="20 s, for a check")
    args = parser.parse_args()
    seconds = 20 if args.quick else args.seconds
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, args.half_open + 1000)), hard))

    with tempfile.TemporaryDirectory(prefix="edgekit-load-") as folder:
        agent = Agent(Path(folder), args.tls)
        try:
            model = tiny_model()
            digest = hashlib.sha256(model).hexdigest()
            with agent.client() as http:
                assert http.put(f"/v1/artifacts/{digest}", content=model).status_code in (200, 201)
                http.get(f"/v2/models/{digest}")  # load the v2 session before measuring
            time.sleep(1)
            rss_start = rss_mb(agent.process.pid)
            stop = time.monotonic() + seconds
            tally, latencies, failures, half_open, rss = Tally(), [], [], {}, [rss_start]
            threads = [threading.Thread(target=client_loop, args=(agent, digest, tally, stop, i))
                       for i in range(args.clients)]
            threads += [threading.Thread(target=big_body_loop, args=(agent, tally, stop, i))
                        for i in range(args.big_bodies)]
            threads += [threading.Thread(target=half_open_loop, args=(agent, args.half_open, stop, half_open)),
                        threading.Thread(target=health_loop, args=(agent, stop, latencies, failures))]
            for thread in threads:
                thread.start()
            while time.monotonic() < stop:
                rss.append(rss_mb(agent.process.pid))
                time.sleep(1)
            for thread in threads:
                thread.join(timeout=60)
            time.sleep(2)
            rss_end = rss_mb(agent.process.pid)
            alive = agent.process.poll() is None
        finally:
            agent.stop()
        log_tail = agent.log.read_text()[-1500:]

    server_errors = sum(n for (_, code), n in tally.codes.items() if code >= 500)
    print(f"edgekit agent under load: {seconds:g} s, {args.clients} clients, {args.big_bodies} unauthenticated "
          f"60 MB bodies at a time, {args.half_open} half-open connections, {'HTTPS' if args.tls else 'HTTP'}")
    print("answers by kind and status:")
    for (kind, code), n in sorted(tally.codes.items()):
        print(f"  {kind:<16} {code:>4}  {n}")
    for (kind, name), n in sorted(tally.errors.items()):
        print(f"  {kind:<16} {name}  {n} (client-side exception)")
    print(f"5xx answers: {server_errors}; outputs that were not x + 1: {tally.wrong}")
    print(f"half-open: opened {half_open.get('opened')}, closed by the agent {half_open.get('closed_by_agent')}, "
          f"most held at once {half_open.get('peak_open')}")
    print(f"agent RSS: start {rss_start:.0f} MB, peak {max(rss):.0f} MB, end {rss_end:.0f} MB "
          f"(growth {rss_end - rss_start:+.0f} MB, peak {max(rss) - rss_start:+.0f} MB)")
    if latencies:
        ordered = sorted(latencies)
        print(f"/v1/health: {len(latencies)} probes, p50 {ordered[len(ordered) // 2]:.1f} ms, "
              f"p99 {ordered[int(len(ordered) * 0.99)]:.1f} ms, max {ordered[-1]:.1f} ms, failures {len(failures)}")
    print(f"agent still running at the end: {alive}")
    if "Traceback" in log_tail:
        print("agent log tail:\n" + log_tail)
    return 1 if server_errors or tally.wrong or not alive or failures else 0


if __name__ == "__main__":
    sys.exit(main())
