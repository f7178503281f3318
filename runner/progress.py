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


@contextmanager
def step_progress(total: int, name: str, enabled: bool = True) -> Iterator[StepBar]:
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[metrics]}"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=not enabled,
    )
    with progress:
        yield StepBar(progress, progress.add_task(name, total=total, metrics=""))
