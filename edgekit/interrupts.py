"""SIGTERM and SIGINT as one exception in the main thread, so that every clean-up on the way out runs.

``stop_on_signals()`` turns the first of either signal into ``Interrupted`` (a ``BaseException``, like
``KeyboardInterrupt``: ``except Exception`` does not swallow it); the staging code that discards a half-built
folder records it on the exception, and the CLI prints one line and exits 128 + the signal number (130, 143).
Later signals are ignored while the clean-up runs. Code that swallows the exception (a library's bare ``except:``
around an import, say) cannot cancel the stop: ``raise_if_interrupted()`` raises it again at the next step and
before a folder is committed.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SIGNALS = (signal.SIGINT, signal.SIGTERM)
_pending: list["Interrupted"] = []  # the signal received inside stop_on_signals(), until it ends


def signal_name(number: int) -> str:
    """``SIGKILL`` for 9; a signal without a name (a real-time one) by its number."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


class Interrupted(BaseException):
    """A run stopped by a signal; ``discarded`` lists what it was building and removed."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.discarded: list[Path] = []
        self.summary: str | None = None  # what stopped, where "nothing written" is not the point (the agent)

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    def message(self) -> str:
        if self.summary:
            return self.summary
        where = ", ".join(str(p) for p in self.discarded)
        return f"interrupted ({signal.Signals(self.signum).name}): nothing written" + (f" to {where}" if where else "")


def record_discarded(error: BaseException, path: Path) -> None:
    """Note on an ``Interrupted`` that ``path`` was being built and has been removed (other errors: nothing)."""
    if isinstance(error, Interrupted):
        error.discarded.append(path)


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """While inside, SIGINT/SIGTERM raise ``Interrupted`` in the main thread (once); handlers restored after."""
    def interrupt(signum, _frame) -> None:
        for sig in SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        _pending.append(Interrupted(signum))
        raise _pending[0]

    previous = {sig: signal.signal(sig, interrupt) for sig in SIGNALS}
    try:
        yield
    finally:
        _pending.clear()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def raise_if_interrupted() -> None:
    """Raise the signal received earlier, if something on the way swallowed its ``Interrupted``."""
    if _pending:
        raise _pending[0]
