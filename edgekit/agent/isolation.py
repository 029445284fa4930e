"""Run one worker job in a child process: own session (process group), wall-clock timeout, memory limit."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..files import to_json
from ..interrupts import signal_name

STDERR_TAIL = 2000


@dataclass
class JobOutcome:
    status: str  # ok | error | runtime_crashed | timeout
    result: dict = field(default_factory=dict)
    signal: str | None = None
    error: str | None = None
    wall_s: float = 0.0


def _limit_memory(limit_bytes: int | None):
    def apply() -> None:
        if limit_bytes:
            resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))
    return apply


def run_job(job: dict, timeout_s: float, memory_limit_mb: int | None, env: dict | None = None) -> JobOutcome:
    """Start ``python -m edgekit.agent.worker``; kill its whole process group at ``timeout_s``."""
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="edgekit-job-") as scratch:
        job_path, result_path, stderr_path = (Path(scratch) / n for n in ("job.json", "result.json", "stderr"))
        job_path.write_text(to_json(job, indent=None))
        with open(stderr_path, "wb") as stderr:
            process = subprocess.Popen(
                [sys.executable, "-m", "edgekit.agent.worker", str(job_path), str(result_path)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True,
                preexec_fn=_limit_memory(memory_limit_mb * 1024 * 1024 if memory_limit_mb else None),
                env={**os.environ, **(env or {})})
            try:
                code = process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                code = None
            finally:
                _kill_group(process.pid)
                process.wait()
        wall = time.perf_counter() - started
        if code is None:
            return JobOutcome("timeout", error=f"no result after {timeout_s:g} s; the process group was killed",
                              wall_s=wall)
        if code < 0:
            name = signal_name(-code)
            return JobOutcome("runtime_crashed", signal=name, error=f"the model's process died with {name}",
                              wall_s=wall)
        if not result_path.exists():
            tail = stderr_path.read_bytes()[-STDERR_TAIL:].decode(errors="replace").strip().splitlines()
            reason = tail[-1] if tail else f"exit status {code}"
            status = "runtime_crashed" if "MemoryError" in reason or code != 0 else "error"
            return JobOutcome(status, error=reason, wall_s=wall)
        result = json.loads(result_path.read_text())
        status = result.pop("status")
        return JobOutcome(status, result=result, error=result.pop("error", None), wall_s=wall)


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
