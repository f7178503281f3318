"""One training run: a picklable spec in, a picklable result out.

`run_trial` is pure: no MLflow, no files written, every random draw from the config's seed. It
runs in the parent for `mgrun train` and in worker processes (joblib, Dask) for sweeps.
"""

from __future__ import annotations

import gc
import hashlib
import math
import random
import struct
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from engine.batch import classes, forward_batch
from engine.losses import LOSSES, l2_penalty
from engine.nn import MLP
from engine.optim import OPTIMIZERS, make_schedule
from engine.value import Value
from runner.config.run import RunConfig
from runner.config.spec import Checkpoint, TrialSpec
from runner.datasets import Dataset, make_dataset
from runner.record import Metric, TrialResult

OnStep = Callable[[int, list[Metric]], None]


def build_model(cfg: RunConfig, data: Dataset) -> MLP:
    """The configured MLP, initialised from the config's seed."""
    nout = LOSSES[cfg.training.loss].width(data.n_classes)
    return MLP(
        data.n_features,
        [*cfg.model.hidden, nout],
        cfg.model.activation,
        rng=random.Random(cfg.seed),
    )


def objective(
    model: MLP, X: Sequence[Sequence[float]], y: Sequence[int], loss: str, l2: float
) -> tuple[Value, float]:
    """(data loss + L2 penalty, accuracy) of the model on (X, y); labels are 0..k-1."""
    outs = forward_batch(model, X)
    rule = LOSSES[loss]
    data_loss = rule.fn(outs, [rule.target(c) for c in y])
    predicted = classes([[v.data for v in o] for o in outs], rule.decision)
    hits = sum(c == t for c, t in zip(predicted, y))
    total = data_loss + l2_penalty(model.parameters(), l2) if l2 else data_loss
    return total, hits / len(y)


def fingerprint(state: dict[str, float]) -> str:
    """A hash of the exact bits of the weights, in name order."""
    bits = b"".join(name.encode() + struct.pack("<d", v) for name, v in sorted(state.items()))
    return hashlib.sha256(bits).hexdigest()


@contextmanager
def gc_paused() -> Iterator[None]:
    """The engine's graphs have no reference cycles, so the cyclic collector only costs time."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class Minibatches:
    """Indices of each step's rows: everything, or shuffled minibatches epoch after epoch. Its
    state (the rng's, the epoch's order, the place in it) is exact: a trial can stop and go on."""

    def __init__(self, n: int, size: int | None, rng: random.Random):
        self.n, self.size, self.rng = n, size, rng
        self.order: list[int] = []
        self.at = n  # the next batch starts here; past the last whole batch: a new epoch

    def __next__(self) -> list[int]:
        n, size = self.n, self.size
        if size is None or size >= n:
            return list(range(n))
        if self.at > n - size:
            self.order = list(range(n))
            self.rng.shuffle(self.order)
            self.at = 0
        self.at += size
        return self.order[self.at - size : self.at]

    def getstate(self) -> tuple:
        return self.rng.getstate(), tuple(self.order), self.at

    def setstate(self, state: tuple) -> None:
        rng, order, self.at = state
        self.rng.setstate(rng)
        self.order = list(order)


def evaluates(step: int, every: int, steps: int, stop: int | None = None) -> bool:
    """Whether the test split is evaluated after `step` (0-based): every `every` steps, at the
    end, and where the trial stops."""
    return (step + 1) % every == 0 or step == steps - 1 or step == (stop or steps) - 1


def expected_points(cfg: RunConfig, has_test: bool) -> dict[str, int]:
    """How many points of each per-step metric a run that trains to the end records."""
    t = cfg.training
    counts = dict.fromkeys(("train_loss", "train_accuracy", "lr"), t.steps)
    if has_test:
        n = sum(evaluates(s, t.eval_every, t.steps) for s in range(t.steps))
        counts |= {"test_loss": n, "test_accuracy": n}
    return counts


def _train(
    spec: TrialSpec, result: TrialResult, on_step: OnStep | None, data: Dataset | None
) -> None:
    cfg, t = spec.config, spec.config.training
    if data is None:
        data = make_dataset(cfg.dataset, cfg.seed, cfg.base_dir)
    model = build_model(cfg, data)
    opt = OPTIMIZERS[t.optimizer](
        model.parameters(),
        lr=t.lr,
        momentum=t.momentum,
        weight_decay=t.weight_decay,
        betas=t.betas,
        eps=t.eps,
    )
    schedule = make_schedule(t.schedule, t.lr, t.steps, step_size=t.step_size, gamma=t.gamma)
    batches = Minibatches(len(data.X_train), t.batch_size, random.Random(f"{cfg.seed}/batches"))
    first, stop = 0, spec.last_step
    if spec.start is not None:
        first = spec.start.step
        model.load_state_dict(spec.start.state)
        opt.load_state(spec.start.optimizer)
        batches.setstate(spec.start.batches)
        result.metrics += spec.start.metrics
    Xtr, ytr = data.X_train, data.y_train
    for step in range(first, stop):
        idx = next(batches)
        loss, acc = objective(model, [Xtr[i] for i in idx], [ytr[i] for i in idx], t.loss, t.l2)
        if not math.isfinite(loss.data):
            result.status = "FAILED"
            result.reason = f"diverged at step {step}: loss={loss.data}; try a lower training.lr"
            break
        model.zero_grad()
        loss.backward()
        opt.lr = schedule(step)
        opt.step()
        points = [
            ("train_loss", loss.data, step),
            ("train_accuracy", acc, step),
            ("lr", opt.lr, step),
        ]
        if data.X_test and evaluates(step, t.eval_every, t.steps, stop):
            test_loss, test_acc = objective(model, data.X_test, data.y_test, t.loss, t.l2)
            points += [("test_loss", test_loss.data, step), ("test_accuracy", test_acc, step)]
        result.metrics += points
        if on_step is not None:
            on_step(step, points)

    result.state = model.state_dict()
    result.fingerprint = fingerprint(result.state)
    if stop < t.steps and result.status == "FINISHED":
        result.checkpoint = Checkpoint(
            stop, result.state, opt.state(), batches.getstate(), tuple(result.metrics)
        )
    for key, value, _ in result.metrics:
        result.final_metrics[key] = value
    if result.status == "FINISHED":
        _final_gradients(model, data, t.loss, t.l2, result)


def _final_gradients(model: MLP, data: Dataset, loss: str, l2: float, result: TrialResult) -> None:
    """d(training objective)/d(parameter) at the final weights, over the whole training set,
    with the objective and accuracy there (minibatch steps only ever see one batch)."""
    total, acc = objective(model, data.X_train, data.y_train, loss, l2)
    model.zero_grad()
    total.backward()
    result.final_metrics["final_train_loss"] = total.data
    result.final_metrics["final_train_accuracy"] = acc
    result.final_gradients = {name: p.grad for name, p in model.named_parameters()}
    per_layer: dict[str, float] = {}
    for name, g in result.final_gradients.items():
        layer = name.split(".")[1]
        per_layer[layer] = per_layer.get(layer, 0.0) + g * g
    result.final_metrics["final_grad_norm"] = math.sqrt(math.fsum(per_layer.values()))
    for layer, sq in per_layer.items():
        result.final_metrics[f"final_grad_norm.layer_{layer}"] = math.sqrt(sq)


def run_trial(
    spec: TrialSpec, on_step: OnStep | None = None, data: Dataset | None = None
) -> TrialResult:
    """Train the spec's model on `data` (built from the config when not given); failures come
    back as FAILED results, only Ctrl-C propagates."""
    result = TrialResult.of(spec)
    result.started = time.time()
    start = time.perf_counter()
    try:
        with gc_paused():
            _train(spec, result, on_step, data)
    except Exception as exc:  # a trial's failure is data for the parent, not a crash
        result.status = "FAILED"
        result.reason = f"{type(exc).__name__}: {exc}"
        result.traceback = traceback.format_exc()
    result.seconds = time.perf_counter() - start
    return result
