"""One training run: a picklable spec in, a picklable result out.

`run_trial` is pure: no MLflow, no files written, every random draw from the config's seed. It
runs in the parent for `mgrun train` and in worker processes (joblib, Dask) for sweeps.
"""

from __future__ import annotations

import functools
import gc
import hashlib
import math
import random
import struct
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from engine.batch import classes, forward_batch
from engine.losses import bce_with_logits, cross_entropy, hinge_loss, l2_penalty, mse_loss
from engine.nn import MLP
from engine.optim import SGD, Adam, make_schedule
from engine.value import Value
from runner.config import RunConfig, config_hash
from runner.datasets import Dataset, make_dataset

Metric = tuple[str, float, int]  # (key, value, step)
OnStep = Callable[[int, list[Metric]], None]


@dataclass(frozen=True)
class TrialSpec:
    """What to train: a resolved config and its place in a sweep."""

    config: RunConfig
    index: int = 0

    @functools.cached_property  # a sweep asks often; the frozen config cannot change under it
    def config_hash(self) -> str:
        return config_hash(self.config)


@dataclass
class TrialResult:
    """What came of a trial; FAILED results carry the metrics up to the failure."""

    status: str  # FINISHED | FAILED
    config_hash: str
    index: int = 0
    reason: str | None = None
    traceback: str | None = None
    metrics: list[Metric] = field(default_factory=list)
    final_metrics: dict[str, float] = field(default_factory=dict)
    state: dict[str, float] = field(default_factory=dict)
    final_gradients: dict[str, float] = field(default_factory=dict)
    fingerprint: str = ""
    seconds: float = 0.0

    @classmethod
    def of(
        cls, spec: TrialSpec, status: str = "FINISHED", reason: str | None = None
    ) -> TrialResult:
        """An empty result for `spec`: to fill in, or, FAILED with a reason, a trial that never
        came back (its worker died)."""
        return cls(status=status, config_hash=spec.config_hash, index=spec.index, reason=reason)


def build_model(cfg: RunConfig, data: Dataset) -> MLP:
    """The configured MLP, initialised from the config's seed."""
    nout = data.n_classes if cfg.training.loss == "cross_entropy" else 1
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
    if loss == "cross_entropy":
        data_loss = cross_entropy(outs, y)
    else:
        scores = [o[0] for o in outs]
        if loss == "bce":
            data_loss = bce_with_logits(scores, y)
        else:
            signs = [2 * t - 1 for t in y]
            data_loss = hinge_loss(scores, signs) if loss == "hinge" else mse_loss(scores, signs)
    predicted = classes([[v.data for v in o] for o in outs])
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


def _batches(n: int, size: int | None, rng: random.Random) -> Iterator[list[int]]:
    """Indices of each step's rows: everything, or shuffled minibatches epoch after epoch."""
    if size is None or size >= n:
        while True:
            yield list(range(n))
    while True:
        order = list(range(n))
        rng.shuffle(order)
        for i in range(0, n - size + 1, size):
            yield order[i : i + size]


def _train(spec: TrialSpec, result: TrialResult, on_step: OnStep | None) -> None:
    cfg, t = spec.config, spec.config.training
    data = make_dataset(cfg.dataset, cfg.seed, cfg.base_dir)
    model = build_model(cfg, data)
    params = model.parameters()
    if t.optimizer == "adam":
        opt = Adam(params, t.lr, betas=t.betas, eps=t.eps, weight_decay=t.weight_decay)
    else:
        opt = SGD(params, t.lr, momentum=t.momentum, weight_decay=t.weight_decay)
    schedule = make_schedule(t.schedule, t.lr, t.steps, step_size=t.step_size, gamma=t.gamma)
    batches = _batches(len(data.X_train), t.batch_size, random.Random(f"{cfg.seed}/batches"))
    Xtr, ytr = data.X_train, data.y_train
    for step in range(t.steps):
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
        if data.X_test and ((step + 1) % t.eval_every == 0 or step == t.steps - 1):
            test_loss, test_acc = objective(model, data.X_test, data.y_test, t.loss, t.l2)
            points += [("test_loss", test_loss.data, step), ("test_accuracy", test_acc, step)]
        result.metrics += points
        if on_step is not None:
            on_step(step, points)

    result.state = model.state_dict()
    result.fingerprint = fingerprint(result.state)
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


def run_trial(spec: TrialSpec, on_step: OnStep | None = None) -> TrialResult:
    """Train the spec's model; failures come back as FAILED results, only Ctrl-C propagates."""
    result = TrialResult.of(spec)
    start = time.perf_counter()
    try:
        with gc_paused():
            _train(spec, result, on_step)
    except Exception as exc:  # a trial's failure is data for the parent, not a crash
        result.status = "FAILED"
        result.reason = f"{type(exc).__name__}: {exc}"
        result.traceback = traceback.format_exc()
    result.seconds = time.perf_counter() - start
    return result
