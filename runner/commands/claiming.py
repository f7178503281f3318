"""What a sweep claims before it trains a trial, and waiting for another sweep's claims
(`runner.tracking.claims` keeps them beside the store)."""

from __future__ import annotations

import time
from typing import Any

from runner import interrupts
from runner.commands.progress import SweepBar
from runner.config.sweep_file import SweepTrial

WAIT = 0.5  # seconds between looks at trials that another sweep is training


def claim_key(t: SweepTrial) -> str:
    """A trial's claim: its config, and for a rung of halving the step it stops at."""
    key = t.spec.config_hash
    return key if t.spec.stop is None else f"{key}.{t.spec.stop}"


def wait_for_others(claims: Any, bar: SweepBar, trials: list[SweepTrial], held: dict) -> None:
    """Until another sweep lets go of its claim on one of `trials` (or its process died)."""
    who = ", ".join(sorted(set(held.values())))
    bar.note(
        f"{len(trials)} trial(s) are being trained by another mgrun ({who}) on this store; "
        "waiting for their runs"
    )
    while all(claims.holder(claim_key(t)) for t in trials):
        interrupts.check()
        time.sleep(WAIT)
