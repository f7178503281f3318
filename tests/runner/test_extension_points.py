"""Adding an activation, loss, optimizer, schedule or backend is one table entry: each test adds
a throwaway entry and sees it accepted by the config and trained end to end."""

from __future__ import annotations

import math

import pytest
from typer.testing import CliRunner

from engine.activations import ACTIVATIONS, Activation
from engine.batch import forward_batch
from engine.gradcheck import gradcheck
from engine.losses import LOSSES, Loss, mse_loss
from engine.optim import OPTIMIZERS, SCHEDULES, Optimizer
from runner.cli import app
from runner.config import TrialSpec, run_config_from_dict
from runner.datasets import make_dataset
from runner.errors import ConfigError
from runner.execution.backends import BACKENDS
from runner.execution.local import Backend
from runner.training.files import trial_files
from runner.training.trial import build_model, run_trial
from tests import support

TINY = {
    "dataset": {"kind": "moons", "n_samples": 40, "test_fraction": 0.25},
    "model": {"hidden": [4]},
    "training": {"steps": 8, "lr": 0.05},
}


def config(**sections: dict) -> object:
    data = {k: {**TINY.get(k, {}), **sections.get(k, {})} for k in TINY.keys() | sections.keys()}
    return run_config_from_dict(data, "t.yaml")


def _softplus(z: float) -> float:
    return max(z, 0.0) + math.log1p(math.exp(-abs(z)))


def test_a_new_activation_trains_through_value_layers_fused_path_and_plots(monkeypatch):
    softplus = Activation(
        "softplus", _softplus, lambda a: -math.expm1(-a), lambda z, xp: xp.logaddexp(0.0, z)
    )
    monkeypatch.setitem(ACTIVATIONS, "softplus", softplus)
    cfg = config(model={"activation": "softplus"})
    data = make_dataset(cfg.dataset, cfg.seed)
    model = build_model(cfg, data)
    assert model.layers[0].neurons[0].activation == "softplus"
    # the fused batch path uses the entry's derivative: it agrees with finite differences
    report = gradcheck(lambda: forward_batch(model, data.X_train[:4])[0][0], model.parameters())
    assert report.ok(1e-5), str(report)
    # and with the scalar graph that Value builds from the same entry
    (fused,) = forward_batch(model, data.X_train[:1])[0]
    assert fused.data == pytest.approx(model(list(data.X_train[0])).data, abs=1e-12)
    result = run_trial(TrialSpec(cfg))
    assert result.status == "FINISHED", result.reason
    assert "plots/decision_boundary.png" in trial_files(cfg, result, data)


def test_a_new_loss_is_accepted_with_its_width_and_decision(monkeypatch):
    mse01 = Loss(lambda outs, t: mse_loss([o[0] for o in outs], t), float, lambda k: 1, "sign")
    monkeypatch.setitem(LOSSES, "mse01", mse01)
    result = run_trial(TrialSpec(config(training={"loss": "mse01"})))
    assert result.status == "FINISHED", result.reason
    assert math.isfinite(result.final_metrics["final_train_loss"])
    with pytest.raises(ConfigError, match="training.loss: mse01 needs exactly 2 classes"):
        config(training={"loss": "mse01"}, dataset={"kind": "spirals"})


class _SignSGD(Optimizer):
    def step(self) -> None:
        for p, g in zip(self.params, self._grads(), strict=True):
            p.data -= self.lr * (g > 0) - self.lr * (g < 0)


def test_a_new_optimizer_and_schedule_train(monkeypatch):
    monkeypatch.setitem(OPTIMIZERS, "signsgd", lambda params, *, lr, **_: _SignSGD(params, lr))
    monkeypatch.setitem(SCHEDULES, "halving", lambda s, step: s.lr0 / 2**step)
    cfg = config(training={"optimizer": "signsgd", "schedule": "halving"})
    result = run_trial(TrialSpec(cfg))
    assert result.status == "FINISHED", result.reason
    lrs = [v for k, v, _ in result.metrics if k == "lr"]
    assert lrs == [0.05 / 2**k for k in range(8)]


class _Threads(Backend):
    name = "threading"

    @property
    def parallelism(self) -> int:
        return 2


def test_a_new_backend_runs_a_sweep_from_the_command_line(monkeypatch, tmp_path, sqlite_uri):
    monkeypatch.setitem(BACKENDS, "threads", lambda n_jobs, address, retries: _Threads(2))
    base = "name: tiny\ndataset: {kind: moons, n_samples: 40}\ntraining: {steps: 4}\n"
    path = support.write_sweep(tmp_path, "params: {training.lr: [0.1, 0.2]}\n", base)
    argv = ["sweep", str(path), "--backend", "threads", "--tracking-uri", sqlite_uri]
    argv.append("--no-progress")
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 0, result.output
    assert "2 of 2 trials to run on 2 threading worker(s)" in result.output
