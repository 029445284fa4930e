"""Progress reporting for long pipelines: a no-op for the API, rich for the CLI."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Iterator

from .interrupts import raise_if_interrupted


# How much the steps done so far count against the typical figures when scaling them to this host and model:
# a prior of this many typical seconds, so that one quick step does not rescale every step after it.
_PRIOR_S = 10.0


class SilentProgress:
    """Records per-step timings (the seconds of every step with a label, summed: a host latency step runs again
    for each rescued candidate); prints nothing."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self._durations: list[float] = []  # every step's seconds in order (two steps may share a label)
        self._planned: list[float] | None = None
        self._planned_from = 0
        self._deadline: float | None = None

    def expect(self, typical_seconds: list[float]) -> None:
        """The steps still to come, as planned (a rescue may add some), each with its typical seconds on a 2-core
        x86 host: the weights of the estimate of what is left."""
        self._planned, self._planned_from, self._deadline = list(typical_seconds), len(self._durations), None

    def expect_until(self, deadline: float) -> None:
        """What is left ends by ``deadline`` (``time.monotonic()``), in however many steps: a rescue's budget."""
        self._planned, self._planned_from, self._deadline = [], len(self._durations), deadline

    def left(self) -> str:
        """``step 5 of ~14, ~40 s left`` once the plan is known: the planned steps not yet run at their typical
        seconds, scaled by how long the planned steps done so far took against theirs. A LiteRT conversion
        typically takes about 60 times an OpenVINO conversion; a mean over the steps done would not know that."""
        if self._planned is None:
            return ""
        done = len(self._durations) - self._planned_from
        step, steps = len(self._durations) + 1, self._planned_from + len(self._planned)
        if self._deadline is not None:
            return f"step {step}, at most ~{max(self._deadline - time.monotonic(), 0.0):.0f} s left"
        text = f"step {step} of ~{max(steps, step)}"
        scale = (sum(self._durations[self._planned_from:]) + _PRIOR_S) / (sum(self._planned[:done]) + _PRIOR_S)
        return text + f", ~{sum(self._planned[done:]) * scale:.0f} s left"

    @contextmanager
    def step(self, label: str) -> Iterator[None]:
        raise_if_interrupted()
        start = time.perf_counter()
        try:
            yield
        finally:
            self._durations.append(time.perf_counter() - start)
            self.timings[label] = self.timings.get(label, 0.0) + self._durations[-1]
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
            self.console.print(f"[red]✗[/] {label} [dim]({self._durations[-1]:.1f} s)[/]")
            raise
        self.console.print(f"[green]✓[/] {label} [dim]({self._durations[-1]:.1f} s)[/]")

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
