"""A second process that builds beside this one: ExecuTorch's lowering runs there, on the other core, while this
process builds the other candidates.

The lowering is single-threaded Python (``torch.export``'s decompositions and XNNPACK's passes keep one core busy
for 20-35 s a candidate on the corpus, 2-core EPYC Zen 4), and so is most of what this process does meanwhile
(LiteRT's conversion). The child is ``python -m edgekit.exporter.second_process FD``, not a ``multiprocessing``
spawn, which would import the caller's ``__main__`` again. It loads the model from the same reference, takes this
process's weights (``torch.save`` bytes read back with ``weights_only``) and example inputs, and must compute the
same outputs on them before it builds anything; where it cannot (a factory whose state is not in its state dict,
a child that does not start), the candidates are built here, as before. Its calls run under ``guarded`` there,
so a failure comes back as the same rejection; a child that dies rejects the candidate it was building. It ignores
SIGINT: this process stops it, before the staging folder it writes into is removed.
"""

from __future__ import annotations

import io
import os
import queue
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from .candidates import Candidate
from ..interrupts import signal_name
from .guard import failure_reason, guarded
from .sources import TorchSource
from .steps.verify import check_outputs

STDERR_TAIL = 300
# Smaller models lower in seconds (MTCNN's nets, 10-17 leaf modules: 3-5 s warm), less than the child needs to
# import ExecuTorch and lower its first model: they are built here. Above it, the lowering took 9-35 s (ResNet-18
# 65, MiniLM 77, MobileNetV2 142, YOLOv8n 179; 2-core EPYC Zen 4).
MIN_LEAF_MODULES = 40
MODEL_COPY = "the second process's copy of the model"


@dataclass
class Outcome:
    """What one call in the second process came to: its result, the failure that rejects its candidate, or why
    the child could not take it (``unavailable``: build it here)."""

    result: Any = None
    failure: str | None = None  # conversion | accuracy, as ``guarded`` rejects
    reason: str | None = None
    unavailable: str | None = None


class SecondProcess:
    """The child, started on first use for a PyTorch ``source``; its calls run one at a time, in order. Nothing
    here waits for it but an outcome: a sender thread feeds it (the weights and calibration data fill a socket's
    buffer long before the child has imported torch)."""

    def __init__(self, source) -> None:
        self.source = source
        self._process: subprocess.Popen | None = None
        self._conn: Connection | None = None
        self._outbox: queue.SimpleQueue | None = None
        self._stderr = None
        self._readiness: tuple | None = None
        self._sent = 0
        self._replies: dict[int, tuple] = {}
        self._cwd = os.getcwd()  # where the reference was given: the child resolves it from there

    def usable(self) -> bool:
        """Whether calls may go to the child (started now if need be): a PyTorch source of at least
        ``MIN_LEAF_MODULES`` leaf modules, a POSIX system (the child's socket is passed as a file descriptor),
        and a child that started."""
        if self._process is None and self._readiness is None and os.name == "posix" and _large_module(self.source):
            self._start()
        return self._process is not None

    @property
    def unavailable(self) -> str | None:
        """Why the child takes no calls, once that is known (None while it may)."""
        return self._readiness[1] if self._readiness is not None and self._readiness[0] != "ready" else None

    def submit(self, label: str, call: Callable, *args) -> Callable[[], Outcome]:
        """Send ``call(source, *args)`` (a module-level function) to the child; returns what waits for its
        ``Outcome``. ``label`` names the step in a failure's reason, as ``guarded`` would."""
        index = self._sent
        self._outbox.put((label, call, args))
        self._sent += 1

        def outcome() -> Outcome:
            reply = self._reply(index)
            if reply[0] == "ok":
                return Outcome(result=reply[1])
            if reply[0] == "raise":  # a full or read-only disk stops the run, as it would here
                raise reply[1]
            if reply[0] == "unavailable":
                return Outcome(unavailable=reply[1])
            if reply[0] == "died":
                return Outcome(failure="conversion", reason=f"{label} failed: {reply[1]}")
            return Outcome(failure=reply[1], reason=reply[2])

        return outcome

    def close(self) -> None:
        """End the child: asked to exit once every reply is in, killed while it still builds (an interrupted run)."""
        if self._process is None:
            return
        if self._readiness is not None and len(self._replies) == self._sent:
            self._outbox.put(None)
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()
        self._conn.close()
        self._stderr.close()
        self._process = None

    def _start(self) -> None:
        try:
            setup = _setup(self.source)
        except Exception as exc:  # a state dict torch.save cannot write: the builds stay here
            self._readiness = ("unavailable", failure_reason("the model's weights for the second process", exc))
            return
        ours, theirs = socket.socketpair()
        self._stderr = tempfile.TemporaryFile()
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-m", __name__, str(theirs.fileno())], pass_fds=[theirs.fileno()],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self._stderr, cwd=self._cwd)
        except OSError as exc:
            self._readiness = ("unavailable", f"the second process did not start ({exc})")
            ours.close()
            self._stderr.close()
            return
        finally:
            theirs.close()
        self._conn = Connection(ours.detach())
        self._outbox = queue.SimpleQueue()
        threading.Thread(target=self._send_all, name="edgekit-second-process", daemon=True).start()
        self._outbox.put(setup)

    def _send_all(self) -> None:
        """The sender thread: every message in order; a child gone ends it (its replies say why)."""
        while True:
            message = self._outbox.get()
            try:
                self._conn.send(message)
            except (OSError, ValueError):
                return
            if message is None:
                return

    def _reply(self, index: int) -> tuple:
        if self._readiness is None:
            self._readiness = self._receive()
        if self.unavailable is not None:
            return "unavailable", self.unavailable
        while index not in self._replies:
            self._replies[len(self._replies)] = self._receive()
        return self._replies[index]

    def _receive(self) -> tuple:
        try:
            return self._conn.recv()
        except (EOFError, OSError):
            code = self._process.wait()
            how = f"signal {signal_name(-code)}" if code < 0 else f"exit code {code}"
            self._stderr.seek(0)
            tail = self._stderr.read().decode(errors="replace").strip()[-STDERR_TAIL:]
            return "died", f"the second process building it died ({how})" + (f": {tail}" if tail else "")


def _large_module(source) -> bool:
    return isinstance(source, TorchSource) and sum(
        1 for module in source.module.modules() if next(module.children(), None) is None) >= MIN_LEAF_MODULES


def _setup(source: TorchSource) -> dict:
    """What the child rebuilds the model from: its reference, weights, examples and outputs on them."""
    import torch

    weights = io.BytesIO()
    torch.save(source.module.state_dict(), weights)
    return {"sys_path": sys.path, "reference": source.reference, "inputs": source.inputs,
            "examples": source.examples, "output_names": source.output_names, "weights": weights.getvalue(),
            "expected": source.run(source.examples)}


def _model_copy(setup: dict) -> TorchSource:
    """The parent's model, rebuilt here: loaded from its reference, given its weights and examples, and checked
    to compute its outputs."""
    import torch

    from .sources import load_source

    copy = load_source(setup["reference"], setup["inputs"])
    copy.module.load_state_dict(torch.load(io.BytesIO(setup["weights"]), weights_only=True))
    copy.inputs, copy.examples, copy.output_names = setup["inputs"], setup["examples"], setup["output_names"]
    check_outputs(setup["expected"], copy.run(copy.examples), "the copy's",
                  hint="the factory builds state outside the module's state dict")
    return copy


def _serve(conn: Connection) -> None:
    import torch

    torch.set_num_threads(1)  # the parent's builds use the cores' threads; the lowering is single-threaded
    setup = conn.recv()
    sys.path[:0] = [path for path in setup["sys_path"] if path not in sys.path]
    source, reason = None, None
    try:
        source = _model_copy(setup)  # in the parent's working directory, where the reference was given
    except Exception as exc:  # whatever stops the copy, the parent builds the candidates itself
        reason = failure_reason(MODEL_COPY, exc)
    conn.send(("ready", None) if source is not None else ("unavailable", reason))
    while source is not None and (job := conn.recv()) is not None:
        label, call, args = job
        stand_in = Candidate("", "")
        try:
            result = guarded([stand_in], label, lambda: call(source, *args))
        except OSError as exc:  # guarded lets only a full or read-only disk through
            conn.send(("raise", exc))
            continue
        conn.send(("ok", result) if stand_in.failure is None else ("failed", stand_in.failure, stand_in.reason))


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the parent stops this one
    _serve(Connection(int(sys.argv[1])))
