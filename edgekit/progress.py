"""Progress reporting for long pipelines: a no-op for the API, rich for the CLI."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Iterator

from .interrupts import raise_if_interrupted


class SilentProgress:
    """Records per-step timings; prints nothing."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self.expected: int | None = None

    def expect(self, steps: int) -> None:
        """How many steps the run has in all, as planned (a rescue may add some): for the estimate of what is left."""
        self.expected = steps

    def left(self) -> str:
        """``step 5 of ~14, ~40 s left`` from the steps done so far and their mean time, once the plan is known."""
        if self.expected is None:
            return ""
        done = len(self.timings)
        text = f"step {done + 1} of ~{max(self.expected, done + 1)}"
        if done:
            remaining = max(self.expected - done, 0) * sum(self.timings.values()) / done
            text += f", ~{remaining:.0f} s left"
        return text

    @contextmanager
    def step(self, label: str) -> Iterator[None]:
        raise_if_interrupted()
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[label] = time.perf_counter() - start
        raise_if_interrupted()  # a signal whose exception something inside the step swallowed

    def note(self, message: str) -> None:
        """A message worth the user's attention (e.g. synthetic data fallback)."""


class RichProgress(SilentProgress):
    """A spinner per running step and a line with its time when it ends (on stderr)."""

    def __init__(self, console) -> None:
        super().__init__()
        self.console = console

    @contextmanager
    def step(self, label: str) -> Iterator[None]:
        try:
            left = self.left()
            with self.console.status(f"[bold]{label}[/]…" + (f" [dim]({left})[/]" if left else "")), \
                    super().step(label):
                yield
        except Exception:
            self.console.print(f"[red]✗[/] {label} [dim]({self.timings[label]:.1f} s)[/]")
            raise
        self.console.print(f"[green]✓[/] {label} [dim]({self.timings[label]:.1f} s)[/]")

    def note(self, message: str) -> None:
        self.console.print(f"[yellow]![/] {message}")


class ThreadedProgress(SilentProgress):
    """Steps from several device threads at once: one spinner naming what runs, a line per finished step."""

    def __init__(self, console) -> None:
        super().__init__()
        self.console = console
        self._lock = threading.Lock()
        self._running: list[str] = []
        self._status = None

    @contextmanager
    def step(self, label: str) -> Iterator[None]:
        self._update(add=label)
        start = time.perf_counter()
        try:
            yield
        except BaseException:
            self._update(remove=label)
            self.console.print(f"[red]✗[/] {label} [dim]({time.perf_counter() - start:.1f} s)[/]", highlight=False)
            raise
        finally:
            self.timings[label] = time.perf_counter() - start
        self._update(remove=label)
        self.console.print(f"[green]✓[/] {label} [dim]({self.timings[label]:.1f} s)[/]", highlight=False)

    def note(self, message: str) -> None:
        self.console.print(f"[yellow]![/] {message}", highlight=False, soft_wrap=True)

    def close(self) -> None:
        with self._lock:
            if self._status is not None:
                self._status.stop()
                self._status = None

    def _update(self, add: str | None = None, remove: str | None = None) -> None:
        with self._lock:
            if add:
                self._running.append(add)
            if remove in self._running:
                self._running.remove(remove)
            text = "[bold]" + " · ".join(self._running) + "[/]…" if self._running else ""
            if self._status is None and text:
                self._status = self.console.status(text)
                self._status.start()
            elif self._status is not None:
                self._status.update(text)
