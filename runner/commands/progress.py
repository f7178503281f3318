"""Progress bars on stderr (stdout stays for results); silent when disabled."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


class StepBar:
    """One training run: step, loss and accuracy."""

    def __init__(self, progress: Progress, task: int):
        self.progress, self.task = progress, task

    def update(self, step: int, metrics: dict[str, float]) -> None:
        shown = "  ".join(
            f"{key} {metrics[key]:.4f}"
            for key in ("train_loss", "train_accuracy")
            if key in metrics
        )
        self.progress.update(self.task, completed=step + 1, metrics=shown)


def _progress(field: str, enabled: bool) -> Progress:
    """A bar with a name, counts, one free-text field and an ETA, on stderr."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(f"{{task.fields[{field}]}}"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=not enabled,
    )


@contextmanager
def step_progress(total: int, name: str, enabled: bool = True) -> Iterator[StepBar]:
    with _progress("metrics", enabled) as progress:
        yield StepBar(progress, progress.add_task(name, total=total, metrics=""))


class SweepBar:
    """A sweep: trials finished, failed and left, with an ETA; notes print above the bar."""

    def __init__(self, progress: Progress, task: int, total: int):
        self.progress, self.task, self.total = progress, task, total
        self.finished = self.failed = 0
        self._show()

    def advance(self, status: str) -> None:
        if status == "FINISHED":
            self.finished += 1
        else:
            self.failed += 1
        self._show(advance=1)

    def skip(self, n: int) -> None:
        """n of the trials counted in the total need no run (found FINISHED earlier)."""
        if n:
            self.total -= n
            self.progress.update(self.task, total=self.total)
            self._show()

    def _show(self, advance: int = 0) -> None:
        left = self.total - self.finished - self.failed
        counts = f"{self.finished} finished  {self.failed} failed  {left} left"
        self.progress.update(self.task, advance=advance, counts=counts)

    def note(self, text: str) -> None:
        self.progress.console.print(text, markup=False, highlight=False, soft_wrap=True)


@contextmanager
def sweep_progress(total: int, name: str, enabled: bool = True) -> Iterator[SweepBar]:
    with _progress("counts", enabled) as progress:
        yield SweepBar(progress, progress.add_task(name, total=total, counts=""), total)
