"""The error hierarchy: every failure a user can cause maps to one class, an exit code and a hint."""

from __future__ import annotations


class EdgekitError(Exception):
    """Base class. ``hint`` tells the user how to fix it; ``exit_code`` is what the CLI returns."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class InputError(EdgekitError):
    """Bad user input: a missing file, a malformed spec, data that does not fit the model."""

    exit_code = 2


class TargetError(EdgekitError):
    """An unknown or malformed target profile."""

    exit_code = 3


class ExportError(EdgekitError):
    """The model could not be loaded, exported, converted or quantized."""

    exit_code = 4


class OutputMismatchError(ExportError):
    """An exported model computes different numbers than its source."""

    def __init__(self, message: str, max_abs_diff: float, hint: str | None = None):
        super().__init__(message, hint)
        self.max_abs_diff = max_abs_diff


class WriteError(EdgekitError):
    """An output could not be written: the disk is full, the folder is read-only, or another run is writing it."""

    exit_code = 8


class AccuracyError(EdgekitError):
    """An artifact broke the target's accuracy budget. ``figures`` holds the measured numbers."""

    exit_code = 5

    def __init__(self, message: str, figures: dict | None = None, hint: str | None = None):
        super().__init__(message, hint)
        self.figures = figures or {}
