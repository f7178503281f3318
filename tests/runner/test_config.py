"""Run configs: defaults, validation messages, overrides, round trips and hashing."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from runner.config import (
    DatasetConfig,
    ModelConfig,
    RunConfig,
    TrackingConfig,
    TrainingConfig,
    check_loss_fits,
    config_hash,
    describe_keys,
    flatten,
    load_run_config,
    run_config_from_dict,
)
from runner.config.schema import Source, build, opt
from runner.datasets import Dataset
from runner.errors import ConfigError
from tests.support import ROOT


def write(tmp_path: Path, text: str, name: str = "run.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def config_error(path: Path, overrides: tuple[str, ...] = ()) -> str:
    with pytest.raises(ConfigError) as info:
        load_run_config(path, overrides)
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith(f"{path}: "), msg
    return msg


def test_moons_config_is_the_micrograd_demo():
    cfg = load_run_config(ROOT / "configs" / "moons.yaml")
    assert (cfg.name, cfg.seed) == ("moons", 1337)
    assert cfg.dataset == DatasetConfig(kind="moons", n_samples=100, noise=0.1, test_fraction=0.0)
    assert cfg.model == ModelConfig(hidden=(16, 16), activation="relu")
    t = cfg.training
    assert (t.steps, t.loss, t.l2, t.optimizer, t.lr, t.schedule) == (
        100,
        "hinge",
        1e-4,
        "sgd",
        1.0,
        "linear",
    )
    assert cfg.base_dir == str((ROOT / "configs").resolve())


@pytest.mark.parametrize("name", ["moons", "circles", "xor", "spirals", "csv_example"])
def test_shipped_configs_load(name: str):
    cfg = load_run_config(ROOT / "configs" / f"{name}.yaml")
    assert cfg.name == name


def test_defaults_fill_what_the_file_leaves_out(tmp_path: Path):
    cfg = load_run_config(write(tmp_path, "seed: 5\ntraining: {lr: 0.5}\n", "my_run.yaml"))
    assert cfg.name == "my_run"
    assert cfg.seed == 5
    assert cfg.dataset == DatasetConfig()
    assert cfg.model == ModelConfig()
    assert cfg.training == TrainingConfig(lr=0.5)
    assert cfg.tracking == TrackingConfig()
    assert cfg.source == str(tmp_path / "my_run.yaml")
    assert cfg.base_dir == str(tmp_path.resolve())


def test_an_empty_mapping_is_all_defaults(tmp_path: Path):
    cfg = load_run_config(write(tmp_path, "{}\n"))
    assert cfg == RunConfig(name="run", seed=0)


@pytest.mark.parametrize(
    ("kind", "expected"), [("moons", 2), ("circles", 2), ("xor", 2), ("spirals", 3), ("blobs", 3)]
)
def test_n_classes_default_depends_on_the_kind(tmp_path: Path, kind: str, expected: int):
    loss = "hinge" if expected == 2 else "cross_entropy"
    cfg = load_run_config(write(tmp_path, f"dataset: {{kind: {kind}}}\ntraining: {{loss: {loss}}}"))
    assert cfg.dataset.n_classes == expected


def test_types_are_converted_where_safe(tmp_path: Path):
    text = "training: {lr: 1, l2: 1e-3, betas: [0, 0.5]}\nmodel: {hidden: [4]}\n"
    cfg = load_run_config(write(tmp_path, text))
    assert cfg.training.lr == 1.0 and type(cfg.training.lr) is float
    assert cfg.training.l2 == 1e-3  # PyYAML reads a dotless exponent as text
    assert cfg.training.betas == (0.0, 0.5)
    assert cfg.model.hidden == (4,)


def test_configs_are_frozen():
    cfg = run_config_from_dict({}, "x.yaml")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.training.lr = 2.0  # type: ignore[misc]


BAD = [
    ("trainng: {lr: 0.1}", "trainng: unknown key; did you mean 'training'?"),
    ("training: {lrr: 0.1}", "training.lrr: unknown key; did you mean 'training.lr'?"),
    ("zzz: 1", "zzz: unknown key; choose one of name, seed"),
    ("dataset: 3", "dataset: must be a mapping"),
    ("name: 3", "name: must be text"),
    ("seed: true", "seed: must be a whole number, got true"),
    ("seed: 1.5", "seed: must be a whole number"),
    ("training: {steps: true}", "training.steps: must be a whole number"),
    ("training: {lr: fast}", "training.lr: must be a number, got 'fast'"),
    ("training: {lr: .nan}", "training.lr: must be a finite number"),
    ("training: {lr: null}", "training.lr: must be a number, got null"),
    ("training: {steps: 0}", "training.steps: must be > 0, got 0"),
    ("training: {lr: 0}", "training.lr: must be > 0"),
    ("training: {lr: -1.0}", "training.lr: must be > 0, got -1.0; set a positive learning rate"),
    ("training: {l2: -1.0}", "training.l2: must be >= 0"),
    ("training: {batch_size: 0}", "training.batch_size: must be > 0"),
    ("training: {eval_every: 0}", "training.eval_every: must be > 0"),
    ("training: {momentum: 1.0}", "training.momentum: must be in [0, 1)"),
    ("training: {betas: [0.9, 1.0]}", "training.betas: must be in [0, 1)"),
    ("training: {betas: [0.9]}", "training.betas: must have 2 items, got 1"),
    ("training: {betas: 0.9}", "training.betas: must be a list"),
    ("training: {eps: 0.0}", "training.eps: must be > 0"),
    ("training: {loss: hindge}", "training.loss: unknown value 'hindge'; did you mean 'hinge'?"),
    ("training: {optimizer: adm}", "training.optimizer: unknown value 'adm'; did you mean 'adam'?"),
    ("training: {schedule: cosin}", "training.schedule: unknown value 'cosin'; did you mean"),
    ("model: {activation: relu6}", "model.activation: unknown value 'relu6'; did you mean 'relu'"),
    ("model: {activation: xyz}", "model.activation: unknown value 'xyz'; choose one of relu"),
    ("model: {hidden: []}", "model.hidden: must not be empty"),
    ("model: {hidden: [8, 0]}", "model.hidden: must be > 0, got 0"),
    ("model: {hidden: [8, true]}", "model.hidden[1]: must be a whole number"),
    ("model: {hidden: 16}", "model.hidden: must be a list"),
    ("dataset: {kind: moon}", "dataset.kind: unknown value 'moon'; did you mean 'moons'?"),
    ("dataset: {test_fraction: 1.0}", "dataset.test_fraction: must be in [0, 1)"),
    ("dataset: {test_fraction: -0.1}", "dataset.test_fraction: must be in [0, 1)"),
    ("dataset: {noise: -0.1}", "dataset.noise: must be >= 0"),
    ("dataset: {n_samples: 3}", "dataset.n_samples: must be at least 2 per class (4), got 3"),
    ("dataset: {standardize: 1}", "dataset.standardize: must be true or false"),
    ("dataset: {kind: moons, n_classes: 3}", "dataset.n_classes: moons always has 2 classes"),
    ("dataset: {kind: spirals, n_classes: 1}", "dataset.n_classes: must be >= 2"),
    ("dataset: {kind: moons, path: a.csv}", "dataset.path: only used with kind csv"),
    ("dataset: {kind: csv, label: y}", "dataset.path: required for kind csv"),
    ("dataset: {kind: csv, path: a.csv}", "dataset.label: required for kind csv"),
    ("dataset: {kind: csv, path: a.csv, label: y, n_classes: 2}", "dataset.n_classes: csv counts"),
    ("dataset: {kind: csv, path: a.csv, label: y, features: []}", "dataset.features: must not be"),
    ("dataset: {kind: csv, path: a.csv, label: y, features: [y]}", "dataset.features: lists the"),
    ("dataset: {kind: spirals}", "training.loss: hinge needs exactly 2 classes, but the spirals"),
    (
        "dataset: {kind: blobs, n_classes: 4}\ntraining: {loss: bce}",
        "training.loss: bce needs exactly 2 classes",
    ),
    ("tracking: {uri: 5}", "tracking.uri: must be text"),
]


@pytest.mark.parametrize(("text", "expected"), BAD)
def test_bad_values_name_the_file_and_the_field(tmp_path: Path, text: str, expected: str):
    msg = config_error(write(tmp_path, text + "\n"))
    assert expected in msg
    assert ";" in msg  # every message says how to fix it


def test_a_missing_file(tmp_path: Path):
    assert "file not found" in config_error(tmp_path / "nope.yaml")


@pytest.mark.parametrize("text", ["", "# only a comment\n"])
def test_an_empty_file(tmp_path: Path, text: str):
    assert "empty" in config_error(write(tmp_path, text))


def test_a_file_that_is_not_a_mapping(tmp_path: Path):
    assert "must be a mapping" in config_error(write(tmp_path, "- 1\n- 2\n"))


def test_malformed_yaml_names_the_line(tmp_path: Path):
    msg = config_error(write(tmp_path, "name: x\nseed: 1\ntraining: {lr: 0.1\n"))
    assert "malformed YAML" in msg and "line 4" in msg


def test_yaml_tags_are_refused_and_never_run(tmp_path: Path):
    marker = tmp_path / "ran"
    path = write(tmp_path, f"name: !!python/object/apply:os.system ['touch {marker}']\n")
    msg = config_error(path)
    assert "tags" in msg and "not allowed" in msg and "line 1" in msg
    assert not marker.exists()


def test_overrides_apply_before_validation(tmp_path: Path):
    path = write(tmp_path, "training: {lr: 0.1}\n")
    overrides = ("training.lr=0.05", "model.hidden=[8,8]", "training.batch_size=null", "seed=9")
    cfg = load_run_config(path, overrides)
    assert cfg.training.lr == 0.05
    assert cfg.model.hidden == (8, 8)
    assert cfg.training.batch_size is None
    assert cfg.seed == 9


def test_a_later_override_wins_and_sections_are_created(tmp_path: Path):
    path = write(tmp_path, "seed: 1\n")
    cfg = load_run_config(path, ("tracking.experiment=a", "tracking.experiment=b"))
    assert cfg.tracking.experiment == "b"


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("training.lr=-1", "--set training.lr: must be > 0, got -1.0"),
        ("training.lrr=1", "--set training.lrr: unknown key; did you mean 'training.lr'?"),
        ("trainng.lr=1", "--set trainng.lr: unknown key; did you mean 'training'?"),
        ("model.hidden=[8,0]", "--set model.hidden: must be > 0, got 0"),
        ("model.hidden=[8, x]", "--set model.hidden: must be a whole number, got 'x'"),
        ("training.steps=true", "--set training.steps: must be a whole number"),
        ("training.lr", "--set training.lr: expected KEY=VALUE"),
        ("=1", "expected KEY=VALUE"),
        ("training..lr=1", "expected KEY=VALUE"),
        ("training.lr=", "--set training.lr: empty value"),
        ("training.lr=[1", "--set training.lr: malformed value"),
        ("seed.x=1", "--set seed.x: seed is not a section"),
        ("name=!!python/name:os.system", "--set name: YAML tags are not allowed"),
    ],
)
def test_bad_overrides_name_the_override(tmp_path: Path, override: str, expected: str):
    msg = config_error(write(tmp_path, "seed: 1\n"), (override,))
    assert expected in msg


def test_overrides_do_not_change_the_file_data(tmp_path: Path):
    path = write(tmp_path, "training: {lr: 0.1}\n")
    load_run_config(path, ("training.lr=0.2",))
    assert load_run_config(path).training.lr == 0.1


def test_to_dict_round_trips_through_yaml(tmp_path: Path):
    cfg = load_run_config(ROOT / "configs" / "spirals.yaml", ("training.betas=[0.8, 0.9]",))
    d = cfg.to_dict()
    assert set(d) == {"name", "seed", "dataset", "model", "training", "tracking"}
    assert d["model"]["hidden"] == [32, 32] and d["training"]["betas"] == [0.8, 0.9]
    again = run_config_from_dict(yaml.safe_load(yaml.safe_dump(d)), cfg.source, cfg.base_dir)
    assert again == cfg
    csv_cfg = load_run_config(ROOT / "configs" / "csv_example.yaml")
    assert csv_cfg.dataset.n_classes is None
    assert run_config_from_dict(yaml.safe_load(yaml.safe_dump(csv_cfg.to_dict()))) == csv_cfg


def test_flatten_gives_dotted_leaves():
    flat = flatten(run_config_from_dict({}, "a.yaml").to_dict())
    assert flat["training.lr"] == 0.1
    assert flat["model.hidden"] == [16, 16]
    assert flat["tracking.uri"] is None
    assert flat["name"] == "a"
    assert flatten({"a": {"b": {"c": 1}}, "d": 2}) == {"a.b.c": 1, "d": 2}


HASH_SCRIPT = """
from runner.config import config_hash, load_run_config
print(config_hash(load_run_config("configs/spirals.yaml")))
"""


def test_config_hash_is_stable_across_processes():
    hashes = set()
    for seed in ("0", "1"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT)}
        out = subprocess.run(
            [sys.executable, "-c", HASH_SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True
        )
        assert out.returncode == 0, out.stderr
        hashes.add(out.stdout.strip())
    assert hashes == {config_hash(load_run_config(ROOT / "configs" / "spirals.yaml"))}


def test_config_hash_follows_what_is_computed():
    base = run_config_from_dict({"name": "a"}, "a.yaml")
    h = config_hash(base)
    assert len(h) == 64
    assert config_hash(run_config_from_dict({"name": "a"}, "b.yaml", "/elsewhere")) == h
    assert config_hash(run_config_from_dict({"name": "a", "tracking": {"uri": "x"}})) == h
    assert config_hash(run_config_from_dict({"name": "a", "training": {"lr": 0.2}})) != h
    assert config_hash(run_config_from_dict({"name": "a", "seed": 1})) != h
    assert config_hash(run_config_from_dict({"name": "a", "model": {"hidden": [16]}})) != h


def test_check_loss_fits_the_dataset_classes():
    cfg = run_config_from_dict(
        {"dataset": {"kind": "csv", "path": "d.csv", "label": "y"}}, "c.yaml"
    )
    three = Dataset(((0.0,),) * 3, (0, 1, 2), (), (), 1, 3, ("x",), ("a", "b", "c"))
    with pytest.raises(ConfigError, match=r"^c\.yaml: training\.loss: hinge needs exactly 2"):
        check_loss_fits(cfg, three)
    check_loss_fits(cfg, dataclasses.replace(three, y_train=(0, 1, 1), n_classes=2))
    ce = dataclasses.replace(cfg, training=TrainingConfig(loss="cross_entropy"))
    check_loss_fits(ce, three)


def test_describe_keys_documents_every_key():
    text = describe_keys()
    for key in flatten(run_config_from_dict({}, "a.yaml").to_dict()):
        assert f"\n{key}: " in f"\n{text}", key
    assert "training.lr: 0.1 " in text
    assert "model.hidden: [16, 16]" in text


@dataclasses.dataclass(frozen=True)
class _Inner:
    n: int = opt(1, "a count")


@dataclasses.dataclass(frozen=True)
class _Outer:
    inner: _Inner = opt(_Inner, "")
    tags: dict[str, float] | None = opt(None, "free-form numbers")


def test_schema_builds_any_frozen_dataclass_with_prefixed_errors():
    src = Source("sweep.yaml", overrides=("base.inner.n",))
    assert build(_Outer, {"inner": {"n": 3}, "tags": {"a": 1}}, src) == _Outer(
        _Inner(3), {"a": 1.0}
    )
    with pytest.raises(ConfigError, match=r"^sweep\.yaml: base\.inner\.m: unknown key; did you"):
        build(_Outer, {"inner": {"m": 3}}, src, "base")
    with pytest.raises(ConfigError, match=r"^sweep\.yaml: --set base\.inner\.n: must be a whole"):
        build(_Outer, {"inner": {"n": "x"}}, src, "base")
