"""Keep third-party chatter (prints, logger warnings, deprecation warnings) out of edgekit's output.

Only for the duration of one call: nothing global is changed. What edgekit needs from those libraries
(check results, failures) comes back through return values and exceptions, not through their logs.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator

_NOISY_LOGGERS = ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript", "root")


@contextlib.contextmanager
def quiet() -> Iterator[io.StringIO]:
    """Swallow stdout prints, warnings and INFO/WARNING logs; yields the captured text."""
    captured = io.StringIO()
    loggers = [logging.getLogger(name if name != "root" else None) for name in _NOISY_LOGGERS]
    levels = [logger.level for logger in loggers]
    try:
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        with warnings.catch_warnings(), contextlib.redirect_stdout(captured):
            warnings.simplefilter("ignore")
            yield captured
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)
