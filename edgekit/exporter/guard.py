"""One guard for every builder and step: a model problem becomes a rejected candidate with a reason, never a
traceback, and third-party scratch files never reach the user's working directory.

Every call runs in a scratch current directory (removed afterwards), and any ``Exception`` it raises rejects
the candidates it was building, naming the step and, where the runtime's message says so, the op and node; a
step's ``AccuracyError`` rejects them for accuracy.
``KeyboardInterrupt`` and ``SystemExit`` still stop the run, and so does a full or read-only disk.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import TypeVar

from ..errors import AccuracyError, EdgekitError
from ..files import is_disk_failure, scratch_cwd
from .steps.verify import first_lines

T = TypeVar("T")
REASON_CHARS = 400
# ONNX Runtime names the failing node in two shapes of message.
_ORT_RUNNING = re.compile(r"running (\w+) node\. Name:'([^']*)'")
_ORT_MISSING = re.compile(r"implementation for (\w+)\(\d+\) node with name '([^']*)'")


def failure_reason(step: str, exc: BaseException) -> str:
    """``STEP: message`` for edgekit's own errors; ``STEP failed [op X, node 'n']: Type: message`` otherwise."""
    if isinstance(exc, EdgekitError):
        return f"{step}: {exc.message}"[:REASON_CHARS]
    text = str(exc)
    where = ""
    match = _ORT_RUNNING.search(text) or _ORT_MISSING.search(text)
    if match:
        where = f" at op {match[1]}, node '{match[2]}'"
    return f"{step} failed{where}: {type(exc).__name__}: {first_lines(text) or '(no message)'}"[:REASON_CHARS]


def attempt(step: str, call: Callable[[], T]) -> tuple[T | None, str | None]:
    """Run ``call()`` in a scratch directory; returns ``(result, None)``, or ``(None, reason)`` on any exception."""
    result, error = _caught(call)
    return result, None if error is None else failure_reason(step, error)


def guarded(candidates: Iterable, step: str, call: Callable[[], T], failure: str = "conversion") -> T | None:
    """``attempt`` that rejects ``candidates`` with the reason when ``call()`` fails (for ``failure``, or for
    accuracy when it raised ``AccuracyError``); returns None then."""
    result, error = _caught(call)
    if error is not None:
        for candidate in candidates:
            candidate.reject("accuracy" if isinstance(error, AccuracyError) else failure, failure_reason(step, error))
    return result


def _caught(call: Callable[[], T]) -> tuple[T | None, Exception | None]:
    try:
        with scratch_cwd():
            return call(), None
    except Exception as exc:  # the guard's whole job: any model problem is recorded, never raised
        if is_disk_failure(exc):  # a full or read-only disk is no model's fault: the run stops and says so
            raise
        return None, exc
