"""Run configs: one YAML file (plus `--set` overrides) in, one frozen, validated RunConfig out.

Validation happens here, once, before anything runs; every problem is a ConfigError whose
message names the file, the dotted field and the fix. `describe_keys()` documents every key.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from engine.activations import ACTIVATIONS
from engine.losses import LOSSES
from engine.optim import OPTIMIZERS, SCHEDULES
from runner.config.limits import (
    GENERATED_FEATURES,
    MAX_CLASSES,
    MAX_LAYERS,
    MAX_NAME,
    MAX_NOISE,
    MAX_SAMPLES,
    MAX_STEPS,
    MAX_UNITS,
    MAX_WEIGHTS,
    name_problem,
    too_many_weights,
)
from runner.config.schema import (
    Source,
    above,
    at_least,
    at_most,
    at_most_items,
    both,
    build,
    each,
    in_range,
    nonempty,
    opt,
    plain,
)
from runner.config.yaml_file import apply_overrides, read_yaml

KINDS = ("moons", "circles", "blobs", "xor", "spirals", "csv")
_FIXED_CLASSES = {"moons": 2, "circles": 2, "xor": 2}
_DEFAULT_CLASSES = {"spirals": 3, "blobs": 3}


@dataclass(frozen=True)
class DatasetConfig:
    kind: str = opt("moons", "which dataset to build", choices=KINDS)
    n_samples: int = opt(
        100,
        f"number of points generated (not csv), at most {MAX_SAMPLES}",
        check=both(above(0, "use e.g. 100"), at_most(MAX_SAMPLES, "use e.g. 1000")),
    )
    noise: float = opt(
        0.1,
        f"std of the gaussian noise (spirals: on the angle), at most {MAX_NOISE:g}",
        check=both(
            at_least(0, "use e.g. 0.1"),
            at_most(MAX_NOISE, "use e.g. 0.1 (the points lie within about 2 of 0)"),
        ),
    )
    n_classes: int | None = opt(
        2,
        f"classes of spirals/blobs (default 3, at most {MAX_CLASSES}); moons, circles, xor "
        "have 2; csv counts them",
        check=both(at_least(2, "use 2 or more"), at_most(MAX_CLASSES, "use e.g. 10")),
    )
    test_fraction: float = opt(
        0.2,
        "share of the points held out as a test split",
        check=in_range(0, 1, "use e.g. 0.2, or 0.0 for no test split"),
    )
    standardize: bool = opt(False, "scale features to mean 0, std 1 (train-split statistics)")
    path: str | None = opt(None, "csv: the data file, relative to the config file")
    label: str | None = opt(None, "csv: the column holding the class labels")
    features: tuple[str, ...] | None = opt(
        None,
        "csv: the feature columns (default: all others)",
        check=nonempty("list one or more columns, or remove the key"),
    )


@dataclass(frozen=True)
class ModelConfig:
    hidden: tuple[int, ...] = opt(
        (16, 16),
        f"sizes of the hidden layers (at most {MAX_LAYERS} of {MAX_UNITS} units, "
        f"{MAX_WEIGHTS} weights in all)",
        check=both(
            each(
                both(above(0, "use e.g. [16, 16]"), at_most(MAX_UNITS, "use e.g. [64, 64]")),
                "list at least one layer size, e.g. [16]",
            ),
            at_most_items(MAX_LAYERS, "use fewer layers"),
        ),
    )
    activation: str = opt("relu", "activation of the hidden layers", choices=ACTIVATIONS)


@dataclass(frozen=True)
class TrainingConfig:
    steps: int = opt(
        100,
        f"number of optimizer steps, at most {MAX_STEPS}",
        check=both(above(0, "use e.g. 100"), at_most(MAX_STEPS, "use e.g. 10000")),
    )
    loss: str = opt("hinge", "training loss; hinge, bce and mse need 2 classes", choices=LOSSES)
    l2: float = opt(
        1e-4,
        "weight of the L2 penalty added to the loss",
        check=at_least(0, "use e.g. 1.0e-4 or 0"),
    )
    optimizer: str = opt("sgd", "optimizer", choices=OPTIMIZERS)
    lr: float = opt(
        0.1,
        "learning rate (the start value of the schedule)",
        check=above(0, "set a positive learning rate"),
    )
    momentum: float = opt(0.0, "sgd momentum", check=in_range(0, 1, "use e.g. 0.9, or 0 for none"))
    weight_decay: float = opt(
        0.0,
        "weight decay the optimizer adds to each gradient",
        check=at_least(0, "use e.g. 1.0e-4 or 0"),
    )
    betas: tuple[float, float] = opt(
        (0.9, 0.999),
        "adam moment decay rates",
        check=each(in_range(0, 1, "use e.g. [0.9, 0.999]"), "use e.g. [0.9, 0.999]"),
    )
    eps: float = opt(1e-8, "adam epsilon", check=above(0, "use e.g. 1.0e-8"))
    schedule: str = opt("constant", "learning-rate schedule over the steps", choices=SCHEDULES)
    step_size: int = opt(30, "step schedule: steps between decays", check=above(0, "use e.g. 30"))
    gamma: float = opt(
        0.1, "step schedule: factor applied at each decay", check=above(0, "use e.g. 0.1")
    )
    batch_size: int | None = opt(
        None,
        f"minibatch size, at most {MAX_SAMPLES}; null trains on the full batch",
        check=both(
            above(0, "use e.g. 32, or null for full batch"),
            at_most(MAX_SAMPLES, "use e.g. 32, or null for full batch"),
        ),
    )
    eval_every: int = opt(10, "steps between test-split evaluations", check=above(0, "use e.g. 10"))


@dataclass(frozen=True)
class TrackingConfig:
    uri: str | None = opt(None, "MLflow tracking URI (--tracking-uri and MLFLOW_TRACKING_URI win)")
    experiment: str | None = opt(
        None,
        f"MLflow experiment (default: the run's name), at most {MAX_NAME} characters",
        check=name_problem,
    )
    max_points: int = opt(
        500,
        "points logged per metric per run: every step up to this many, else evenly spaced "
        "steps with the first and last (metrics.csv keeps them all)",
        check=at_least(2, "use e.g. 500"),
    )


@dataclass(frozen=True)
class RunConfig:
    name: str | None = opt(
        None,
        f"run name (default: the config file's name without .yaml), at most {MAX_NAME} characters",
        check=name_problem,
    )
    seed: int = opt(
        0,
        "seed of every random draw: data, split, weights, batches",
        check=at_least(0, "use e.g. 1337"),
    )
    dataset: DatasetConfig = opt(DatasetConfig, "")
    model: ModelConfig = opt(ModelConfig, "")
    training: TrainingConfig = opt(TrainingConfig, "")
    tracking: TrackingConfig = opt(TrackingConfig, "")
    # Where the config came from; not part of its identity.
    source: str = dataclasses.field(default="", compare=False)
    base_dir: str = dataclasses.field(default=".", compare=False)

    def to_dict(self) -> dict[str, Any]:
        """The resolved config as plain nested data (tuples as lists), without its source."""
        return plain(self)


def load_run_config(path: str | Path, overrides: Sequence[str] = ()) -> RunConfig:
    """Read, override and validate a run config file."""
    data = read_yaml(path)
    data, keys = apply_overrides(data, overrides, str(path))
    src = Source(str(path), keys)
    return _from_dict(data, src, str(Path(path).resolve().parent), Path(path).stem)


def run_config_from_dict(
    data: dict[str, Any], source: str = "<dict>", base_dir: str = "."
) -> RunConfig:
    """Validate plain config data (as from `to_dict()` or a sweep) into a RunConfig."""
    return _from_dict(data, Source(source), base_dir, Path(source).stem or "run")


def _from_dict(data: dict[str, Any], src: Source, base_dir: str, stem: str) -> RunConfig:
    data = dict(data)
    if isinstance(data.get("dataset"), dict):
        data["dataset"] = {"n_classes": None, **data["dataset"]}  # None: the kind's own default
    cfg = build(RunConfig, data, src)
    ds = cfg.dataset
    n_classes = ds.n_classes if ds.n_classes is not None else _DEFAULT_CLASSES.get(ds.kind, 2)
    ds = dataclasses.replace(ds, n_classes=None if ds.kind == "csv" else n_classes)
    cfg = dataclasses.replace(
        cfg, name=cfg.name or stem, dataset=ds, source=src.file, base_dir=base_dir
    )
    _check(cfg, src, explicit_classes=data.get("dataset", {}).get("n_classes"))
    return cfg


def _check(cfg: RunConfig, src: Source, explicit_classes: Any) -> None:
    """The rules that involve more than one field."""
    ds, kind = cfg.dataset, cfg.dataset.kind
    if kind == "csv":
        for key in ("path", "label"):
            if getattr(ds, key) is None:
                raise src.error(f"dataset.{key}", f"required for kind csv; set dataset.{key}")
        if explicit_classes is not None:
            raise src.error(
                "dataset.n_classes",
                "csv counts its classes from the label column; remove dataset.n_classes",
            )
        if ds.features is not None and ds.label in ds.features:
            raise src.error(
                "dataset.features",
                f"lists the label column {ds.label!r}; remove it from dataset.features",
            )
        if ds.features is not None and len(set(ds.features)) != len(ds.features):
            raise src.error("dataset.features", "lists a column twice; list each column once")
        return
    for key in ("path", "label", "features"):
        if getattr(ds, key) is not None:
            raise src.error(
                f"dataset.{key}",
                f"only used with kind csv; set dataset.kind: csv or remove dataset.{key}",
            )
    if kind in _FIXED_CLASSES and ds.n_classes != _FIXED_CLASSES[kind]:
        raise src.error(
            "dataset.n_classes",
            f"{kind} always has {_FIXED_CLASSES[kind]} classes, got {ds.n_classes}; "
            "remove dataset.n_classes or use kind spirals or blobs",
        )
    if ds.n_samples < 2 * ds.n_classes:
        raise src.error(
            "dataset.n_samples",
            f"must be at least 2 per class ({2 * ds.n_classes}), got {ds.n_samples}; "
            "raise dataset.n_samples",
        )
    problem = _loss_problem(cfg.training.loss, ds.n_classes, f"the {kind} dataset")
    if problem:
        raise src.error("training.loss", problem)
    problem = _size_problem(cfg, GENERATED_FEATURES, ds.n_classes)
    if problem:
        raise src.error("model.hidden", problem)


def _size_problem(cfg: RunConfig, n_features: int, n_classes: int) -> str | None:
    n_out = n_classes if cfg.training.loss == "cross_entropy" else 1
    return too_many_weights(n_features, cfg.model.hidden, n_out)


def _loss_problem(loss: str, n_classes: int, what: str) -> str | None:
    if LOSSES[loss].binary and n_classes != 2:
        return (
            f"{loss} needs exactly 2 classes, but {what} has {n_classes}; "
            "use training.loss: cross_entropy"
        )
    if n_classes < 2:
        return f"{loss} needs at least 2 classes, but {what} has {n_classes}; use other data"
    return None


class _Data(Protocol):
    n_features: int
    n_classes: int


def check_loss_fits(cfg: RunConfig, dataset: _Data) -> None:
    """Raise ConfigError if the training loss cannot fit the dataset's classes, or the model is too
    big for its features and classes (for csv data)."""
    what = f"the label column {cfg.dataset.label!r}" if cfg.dataset.kind == "csv" else "the dataset"
    problem = _loss_problem(cfg.training.loss, dataset.n_classes, what)
    if problem:
        raise Source(cfg.source).error("training.loss", problem)
    problem = _size_problem(cfg, dataset.n_features, dataset.n_classes)
    if problem:
        raise Source(cfg.source).error("model.hidden", problem)
