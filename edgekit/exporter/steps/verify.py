"""The check every converter runs on its own output: same outputs as PyTorch on the example inputs."""

from __future__ import annotations

import re

import numpy as np

from ...errors import OutputMismatchError

VERIFY_ATOL = 1e-4
VERIFY_RTOL = 1e-3
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def check_outputs(expected: list[np.ndarray], got: list[np.ndarray], what: str, hint: str) -> float:
    """Max abs difference of ``got`` (from ``what``, e.g. "exported ONNX") vs PyTorch's ``expected``.

    Raises ``OutputMismatchError`` on a count or shape mismatch or beyond ``VERIFY_ATOL + VERIFY_RTOL*|ref|``.
    A NaN or inf where PyTorch has the same one is the same output (the accuracy gate judges non-finite outputs);
    anywhere else it is a mismatch.
    """
    if len(expected) != len(got):
        raise OutputMismatchError(f"{what} model has {len(got)} outputs, PyTorch gives {len(expected)}",
                                  float("inf"), hint=hint)
    worst = 0.0
    for index, (ref, out) in enumerate(zip(expected, got)):
        if ref.shape != out.shape:
            raise OutputMismatchError(f"{what} output {index} has shape {out.shape}, PyTorch's {ref.shape}",
                                      float("inf"), hint=hint)
        ref64, out64 = ref.astype(np.float64), out.astype(np.float64)
        same = (ref64 == out64) | (np.isnan(ref64) & np.isnan(out64))
        with np.errstate(invalid="ignore"):
            diff = np.where(same, 0.0, np.abs(out64 - ref64))
        worst = max(worst, float(diff.max(initial=0.0)))
        if not np.all(diff <= VERIFY_ATOL + VERIFY_RTOL * np.abs(np.where(same, 0.0, ref64))):
            raise OutputMismatchError(
                f"{what} output {index} differs from PyTorch: max abs diff {float(diff.max()):.3g} "
                f"(tolerance {VERIFY_ATOL} + {VERIFY_RTOL}*|ref|)", float(diff.max()), hint=hint)
    return worst


def first_lines(text: str, count: int = 2) -> str:
    """The first non-empty lines of an exception text, ANSI colours removed, joined with ' | '."""
    lines = [line.strip() for line in _ANSI.sub("", text).strip().splitlines() if line.strip()]
    return " | ".join(lines[:count])
