"""Progress reporting for long pipelines: a no-op for the API, rich for the CLI."""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Iterator


class SilentProgress:
    """Records per-step timings; prints nothing."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}

    @contextmanager
    def step(self, label: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[label] = time.perf_counter() - start

    def note(self, message: str) -> None:
        """A message worth the user's attention (e.g. synthetic data fallback)."""


class RichProgress(SilentProgress):
    """A spinner per running step and a line with its time when it ends (on stderr)."""

    def __init__(self, console) -> None:
        super().__init__()
        self.console = console

    @contextmanager
    def step(self, label: str) -> Iterator[None]:
        with self.console.status(f"[bold]{label}[/]…"):
            with super().step(label):
                yield
        self.console.print(f"[green]✓[/] {label} [dim]({self.timings[label]:.1f} s)[/]")

    def note(self, message: str) -> None:
        self.console.print(f"[yellow]![/] {message}")
