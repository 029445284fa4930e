"""Long-lived, crash-isolated model sessions for KServe v2 inference (the agent as a cloud baseline).

Each stored artifact that receives v2 requests gets one child process that keeps the model loaded. The child
only ever sends bytes back (JSON and ``.npz`` without pickle), so a model that takes over its process still
cannot make the agent unpickle anything. A child that dies or hangs is killed and replaced on the next request.
"""

from __future__ import annotations

import io
import json
import multiprocessing
import resource
import threading
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np

from ..files import to_json
from .worker import texts_as_unicode

MAX_SESSIONS = 4
MAX_REPLY_BYTES = 256 * 1024 * 1024
START_TIMEOUT_S = 60.0


class SessionError(RuntimeError):
    def __init__(self, status: str, message: str):
        super().__init__(message)
        self.status = status  # error | runtime_crashed | timeout


def _message(data: dict) -> bytes:
    """One strict-JSON message for the pipe between a session and its parent."""
    return to_json(data, indent=None).encode()


def _npz(arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _child(connection, model: str, threads: int, options: dict, memory_limit_mb: int | None) -> None:
    """The session process: load once, then answer feed dicts with outputs and the compute time."""
    if memory_limit_mb:
        limit = memory_limit_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    from .worker import load_runner

    try:
        runner = load_runner(Path(model), threads, options)
        connection.send_bytes(_message({"status": "ok", "inputs": runner.input_specs(),
                                        "outputs": runner.output_names,
                                        "output_specs": runner.output_specs()}))
    except Exception as exc:  # reported to the parent, which answers the request with it
        connection.send_bytes(_message({"status": "error", "error": f"{type(exc).__name__}: {exc}"}))
        return
    while True:
        feeds = connection.recv()
        try:
            started = time.perf_counter()
            outputs = runner.run(feeds)
            compute_ms = (time.perf_counter() - started) * 1e3
            connection.send_bytes(_message({"status": "ok", "compute_ms": compute_ms}))
            connection.send_bytes(_npz({f"output_{i}": texts_as_unicode(o) for i, o in enumerate(outputs)}))
        except Exception as exc:
            connection.send_bytes(_message({"status": "error", "error": f"{type(exc).__name__}: {exc}"}))


class ModelSession:
    def __init__(self, model: Path, threads: int, options: dict, memory_limit_mb: int | None):
        context = multiprocessing.get_context("spawn")
        self._connection, child_end = context.Pipe()
        self.process = context.Process(target=_child, args=(child_end, str(model), threads, options, memory_limit_mb),
                                       daemon=True)
        self.process.start()
        child_end.close()
        self.lock = threading.Lock()
        hello = self._receive_json(START_TIMEOUT_S)
        self.inputs: dict[str, dict] = hello["inputs"]
        self.outputs: list[str] = hello["outputs"]
        self.output_specs: dict[str, dict] = hello["output_specs"]

    @property
    def alive(self) -> bool:
        return self.process.is_alive()

    def infer(self, feeds: dict[str, np.ndarray], timeout_s: float) -> tuple[list[np.ndarray], float]:
        """Outputs in order and the compute time measured inside the session process."""
        with self.lock:
            self._connection.send(feeds)
            header = self._receive_json(timeout_s)
            raw = self._receive_bytes(timeout_s)
        with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
            outputs = [npz[f"output_{i}"] for i in range(len(npz.files))]
        return outputs, float(header["compute_ms"])

    def close(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=5)
        self._connection.close()

    def _receive_bytes(self, timeout_s: float) -> bytes:
        if not self._connection.poll(timeout_s):
            self.close()
            raise SessionError("timeout", f"no answer from the model's process after {timeout_s:g} s")
        try:
            return self._connection.recv_bytes(MAX_REPLY_BYTES)
        except (EOFError, OSError):
            self.process.join(timeout=5)
            code = self.process.exitcode
            raise SessionError("runtime_crashed", f"the model's process died (exit code {code})") from None

    def _receive_json(self, timeout_s: float) -> dict:
        message = json.loads(self._receive_bytes(timeout_s))
        if message["status"] != "ok":
            raise SessionError("error", message["error"])
        return message


class SessionPool:
    """At most ``MAX_SESSIONS`` loaded models, least recently used closed first; dead sessions are replaced."""

    def __init__(self, memory_limit_mb: int | None):
        self.memory_limit_mb = memory_limit_mb
        self._sessions: OrderedDict[str, ModelSession] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, digest: str, model: Path, threads: int = 1, options: dict | None = None) -> ModelSession:
        key = f"{digest}:{threads}:{json.dumps(options or {}, sort_keys=True)}"
        with self._lock:
            session = self._sessions.get(key)
            if session is not None and not session.alive:
                session.close()
                session = None
            if session is None:
                session = ModelSession(model, threads, options or {}, self.memory_limit_mb)
                self._sessions[key] = session
                while len(self._sessions) > MAX_SESSIONS:
                    self._sessions.popitem(last=False)[1].close()
            self._sessions.move_to_end(key)
            return session

    def drop(self, digest: str) -> None:
        with self._lock:
            for key in [k for k in self._sessions if k.startswith(digest)]:
                self._sessions.pop(key).close()

    def close(self) -> None:
        with self._lock:
            for session in self._sessions.values():
                session.close()
            self._sessions.clear()
