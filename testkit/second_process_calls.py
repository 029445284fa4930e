"""Calls the tests send to edgekit's second process (``edgekit/exporter/second_process.py``): module-level, so
that the child imports them by name."""

from __future__ import annotations

import os
import signal
import time

import numpy as np

from edgekit.errors import AccuracyError, ExportError


def first_output(source) -> np.ndarray:
    """The child's copy of the model on its examples."""
    return source.run(source.examples)[0]


def fail_export(source) -> None:
    raise ExportError("no lowering for this op", hint="use another format")


def fail_accuracy(source) -> None:
    raise AccuracyError("accuracy before lowering: cosine 0.1", figures={"cosine": 0.1})


def die(source) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def sleep(source, seconds: float) -> None:
    time.sleep(seconds)
