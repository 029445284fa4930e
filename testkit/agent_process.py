"""Start a real edgekit agent on a free loopback port for the tests and the benches, and stop it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from testkit import REPO


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class AgentProcess:
    url: str
    token: str
    process: subprocess.Popen
    store: Path

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=10)


def start_agent(folder: Path, *args: str, env: dict | None = None, store: Path | None = None,
                test_hooks: bool = True) -> AgentProcess:
    """``edgekit agent serve`` (with test hooks unless told otherwise), its store and token under ``folder``;
    waits until healthy."""
    port = free_port()
    store = store or folder / "store"
    token_file = folder / "token"
    command = [sys.executable, "-m", "edgekit.cli", "agent", "serve", "--port", str(port), "--store", str(store),
               "--token-file", str(token_file), *(["--test-hooks"] if test_hooks else []), *args]
    log = open(folder / f"agent-{port}.log", "wb")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
                               env={**os.environ, **(env or {})})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"agent exited: {(folder / f'agent-{port}.log').read_text()}")
        try:
            if httpx.get(f"{url}/v1/health", timeout=1).status_code == 200:
                return AgentProcess(url, token_file.read_text().strip(), process, store)
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("agent did not become healthy in 30 s")
