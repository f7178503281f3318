"""Synchronous successive halving, and Hyperband's brackets of it.

Every configuration of a bracket trains to the bracket's first rung; the rows of a rung rank
them (`rank_key`: the metric, then the final training loss, then the trial index) and the best
`ceil(n / eta)` of those that finished go on to the next rung, continuing from their checkpoints.
Brackets move in lockstep: one batch holds every bracket's current rung.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Generator

from runner.commands.report import Row, rank_key
from runner.config.halving import HalvingConfig, bracket_sizes, rungs
from runner.config.sweep_file import Sweep, SweepTrial

Plan = Generator[list[SweepTrial], list[Row], None]


def brackets(sweep: Sweep) -> list[tuple[list[int], list[SweepTrial]]]:
    """(rung steps, configurations) of each bracket; the trials split in sweep order."""
    h, steps = _halving(sweep), sweep.base.training.steps
    assert h.min_steps is not None
    stops = rungs(h.min_steps, h.eta, steps)
    if sweep.config.n_trials is None:  # a grid: one bracket
        return [(stops, list(sweep.trials))]
    per_point = len(sweep.config.seeds or (sweep.base.seed,))
    found, at = [], 0
    for b, n in enumerate(bracket_sizes(sweep.config.n_trials, h, steps)):
        found.append((stops[b:], list(sweep.trials[at : at + n * per_point])))
        at += n * per_point
    return found


def rung_trials(sweep: Sweep) -> int:
    """How many rung trials the plan runs when every promoted trial finishes."""
    eta = _halving(sweep).eta
    total = 0
    for stops, trials in brackets(sweep):
        n = len(trials)
        for _ in stops:
            total, n = total + n, math.ceil(n / eta)
    return total


def halving(sweep: Sweep) -> Plan:
    """Each batch: every bracket's configurations at its next rung, stopping there."""
    eta, maximize = _halving(sweep).eta, sweep.config.maximize
    alive = brackets(sweep)
    for k in range(max(len(stops) for stops, _ in alive)):
        batch = [_to(t, stops[k]) for stops, trials in alive if k < len(stops) for t in trials]
        if not batch:
            return
        rows = {r.trial.spec.index: r for r in (yield batch)}
        for b, (stops, trials) in enumerate(alive):
            if k + 1 < len(stops):
                alive[b] = (stops, _promoted(trials, rows, eta, maximize))


def _promoted(
    trials: list[SweepTrial], rows: dict[int, Row], eta: int, maximize: bool
) -> list[SweepTrial]:
    """The best ceil(n / eta) of a rung that finished with a value, in sweep order."""
    finished = [rows[t.spec.index] for t in trials if rows[t.spec.index].status == "FINISHED"]
    scored = [r for r in finished if r.value is not None and math.isfinite(r.value)]
    best = sorted(scored, key=lambda r: rank_key(r, maximize))[: math.ceil(len(trials) / eta)]
    keep = {r.trial.spec.index for r in best}
    return [t for t in trials if t.spec.index in keep]


def _to(t: SweepTrial, stop: int) -> SweepTrial:
    return dataclasses.replace(t, spec=dataclasses.replace(t.spec, stop=stop))


def _halving(sweep: Sweep) -> HalvingConfig:
    h = sweep.config.halving
    assert h is not None, "load_sweep checks that method: halving has its section"
    return h
