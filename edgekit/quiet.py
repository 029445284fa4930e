"""Keep third-party chatter (prints, logger warnings, native log lines) out of edgekit's output.

Only for the duration of one call: nothing global is left changed. What edgekit needs from those libraries
(check results, failures) comes back through return values and exceptions, not through their logs.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator

_NOISY_LOGGERS = ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript", "absl", "root")


@contextlib.contextmanager
def quiet(native: bool = False) -> Iterator[io.StringIO]:
    """Swallow stdout prints, warnings and INFO/WARNING logs; with ``native``, also C/C++ writes to fd 1/2. A
    handler a library adds to the root logger meanwhile (a module-level ``logging.warning`` configures one, as
    executorch's imports do) is removed again: the user's logging is not a library's to configure."""
    captured = io.StringIO()
    loggers = [logging.getLogger(name if name != "root" else None) for name in _NOISY_LOGGERS]
    levels = [logger.level for logger in loggers]
    root_handlers = list(logging.getLogger().handlers)
    try:
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        with warnings.catch_warnings(), contextlib.redirect_stdout(captured), \
                (_native_output_silenced() if native else contextlib.nullcontext()):
            warnings.simplefilter("ignore")
            yield captured
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)
        for handler in [h for h in logging.getLogger().handlers if h not in root_handlers]:
            logging.getLogger().removeHandler(handler)


@contextlib.contextmanager
def _native_output_silenced() -> Iterator[None]:
    """Point file descriptors 1 and 2 at a scratch file while native code logs, then restore them."""
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile() as sink:
        try:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            yield
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
