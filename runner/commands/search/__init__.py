"""Search methods: how a sweep chooses what to train next. One entry per method.

A method is a generator over the sweep. It yields a batch of trials to run; once every trial of
the batch has a row, it is sent those rows in the batch's order (trial order, never completion
order, so its decisions are the same on one core or a hundred) and yields the next batch, until
it returns. Trials whose config already has a FINISHED run in the experiment come back as
resumed rows without running, so a resumed sweep replays the same decisions.
"""

from __future__ import annotations

from collections.abc import Callable, Generator

from runner.commands.report import Row
from runner.commands.search.halving import halving
from runner.commands.search.tpe import tpe
from runner.config.sweep_file import Sweep, SweepTrial

Plan = Generator[list[SweepTrial], list[Row], None]


def every_trial(sweep: Sweep) -> Plan:
    """grid and random: every trial is known before the first runs; one batch."""
    yield list(sweep.trials)


# method name (the sweep file's `method`) -> its plan
SEARCHES: dict[str, Callable[[Sweep], Plan]] = {
    "grid": every_trial,
    "random": every_trial,
    "halving": halving,
    "tpe": tpe,
}
