"""A trial stopped at a step and continued from its checkpoint has the bits of the same config
trained straight through: weights, optimizer state, the minibatch order and the schedule."""

from __future__ import annotations

import pickle
import random

import pytest

from engine.optim import SCHEDULES
from runner.config.run import run_config_from_dict
from runner.config.spec import Checkpoint, TrialSpec
from runner.training.trial import Minibatches, run_trial


def config(optimizer: str, batch_size: int | None, schedule: str, steps: int = 9):
    training = {
        "steps": steps,
        "optimizer": optimizer,
        "lr": 0.05,
        "momentum": 0.9,
        "schedule": schedule,
        "step_size": 2,
        "batch_size": batch_size,
        "eval_every": 4,
    }
    data = {
        "name": "c",
        "seed": 3,
        "dataset": {"kind": "moons", "n_samples": 40, "noise": 0.1, "test_fraction": 0.25},
        "model": {"hidden": [4]},
        "training": training,
    }
    return run_config_from_dict(data, "test", ".")


@pytest.mark.parametrize("schedule", sorted(SCHEDULES))
@pytest.mark.parametrize("batch_size", [None, 8])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_stopping_and_continuing_gives_the_straight_runs_bits(optimizer, batch_size, schedule):
    cfg = config(optimizer, batch_size, schedule)
    straight = run_trial(TrialSpec(cfg))
    first = run_trial(TrialSpec(cfg, stop=3))
    assert first.status == "FINISHED" and first.checkpoint is not None
    assert first.checkpoint.step == 3 and max(s for _, _, s in first.metrics) == 2
    # through the two ways a checkpoint travels: pickled to a worker, JSON in the store
    travelled = pickle.loads(pickle.dumps(first.checkpoint))
    stored = Checkpoint.from_json(travelled.to_json(), travelled.metrics)
    middle = run_trial(TrialSpec(cfg, stop=7, start=stored))
    last = run_trial(TrialSpec(cfg, start=middle.checkpoint))
    assert last.status == "FINISHED" and last.checkpoint is None
    assert last.state == straight.state and last.fingerprint == straight.fingerprint
    assert last.final_metrics == straight.final_metrics
    # the stops add a test evaluation at their step; every other point is the straight run's
    assert set(straight.metrics) <= set(last.metrics)
    extra = {(k, s) for k, _, s in set(last.metrics) - set(straight.metrics)}
    assert extra == {(k, s) for k in ("test_loss", "test_accuracy") for s in (2, 6)}


def test_a_stopped_trial_is_the_first_steps_of_its_full_run():
    cfg = config("adam", 8, "cosine")
    straight = run_trial(TrialSpec(cfg))
    stopped = run_trial(TrialSpec(cfg, stop=5))
    points = [p for p in straight.metrics if p[2] < 5]
    assert [p for p in stopped.metrics if p[0] in ("train_loss", "lr")] == [
        p for p in points if p[0] in ("train_loss", "lr")
    ]
    assert "test_accuracy" in stopped.final_metrics  # evaluated at the stop, for the rung
    assert "final_train_loss" in stopped.final_metrics


def test_minibatches_state_round_trips_mid_epoch():
    batches = Minibatches(10, 3, random.Random("x"))
    for _ in range(4):
        next(batches)
    state = batches.getstate()
    ahead = [next(batches) for _ in range(7)]
    again = Minibatches(10, 3, random.Random("other"))
    again.setstate(Checkpoint.from_json(Checkpoint(0, {}, {}, state).to_json()).batches)
    assert [next(again) for _ in range(7)] == ahead
