"""Progress of a compression run: phase spinners (as export has) plus a bar per epoch with loss and accuracy.

Only rank 0 shows anything; the API's default prints nothing.
"""

from __future__ import annotations

from ..progress import RichProgress, SilentProgress


class SilentTraining(SilentProgress):
    """Records phase timings and the per-epoch figures; prints nothing."""

    def start_epoch(self, epoch: int, epochs: int, batches: int) -> None:
        """Epoch ``epoch`` (1-based) of ``epochs`` starts, with ``batches`` steps."""

    def batch_done(self, loss: float) -> None:
        """One optimizer step finished with this (local) loss."""

    def end_epoch(self, figures: dict[str, float], best: bool) -> None:
        """The epoch's train loss/accuracy and validation accuracy; ``best`` if it is the best so far."""


class RichTraining(RichProgress, SilentTraining):
    """A rich bar per epoch (steps, running loss) and one line per finished epoch, on stderr."""

    def __init__(self, console) -> None:
        super().__init__(console)
        self._bar = None
        self._task = None
        self._loss_sum = 0.0
        self._steps = 0

    def start_epoch(self, epoch: int, epochs: int, batches: int) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._bar = Progress(TextColumn("[bold]epoch {task.fields[epoch]}[/]"), BarColumn(), MofNCompleteColumn(),
                             TextColumn("loss {task.fields[loss]}"), TimeElapsedColumn(), console=self.console,
                             transient=True)
        self._bar.start()
        self._task = self._bar.add_task("train", total=batches, epoch=f"{epoch}/{epochs}", loss="—")
        self._loss_sum, self._steps = 0.0, 0

    def batch_done(self, loss: float) -> None:
        self._loss_sum += loss
        self._steps += 1
        self._bar.update(self._task, advance=1, loss=f"{self._loss_sum / self._steps:.4f}")

    def end_epoch(self, figures: dict[str, float], best: bool) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
        mark = " [green]★ best[/]" if best else ""
        self.console.print(f"epoch {figures['epoch']}: loss {figures['train_loss']:.4f} · train acc "
                           f"{figures['train_accuracy']:.2%} · val acc {figures['val_accuracy']:.2%} "
                           f"[dim]({figures['seconds']:.1f} s)[/]{mark}", highlight=False)
