"""Hostile inputs fail cleanly: one line on stderr naming the file, the field and the fix, exit
code 2, in bounded time and memory, and nothing created (no mlflow.db, no mlruns/)."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from runner.commands.report import sweep_hash, trials_yaml
from runner.commands.sweep import resolve_execution
from runner.config import load_run_config, run_config_from_dict
from runner.config.limits import MAX_YAML_BYTES, FileProblem, read_file
from runner.config.sweep_file import load_sweep
from runner.config.yaml_file import parse_override, read_yaml, set_dotted
from runner.datasets import read_csv
from runner.errors import ConfigError, DataError
from runner.redact import clip, mask_uri, quote

ROOT = Path(__file__).resolve().parents[2]
MGRUN = [sys.executable, "-m", "runner"]
BASE = """\
name: tiny
seed: 5
dataset: {kind: moons, n_samples: 40, noise: 0.1, test_fraction: 0.25}
model: {hidden: [4]}
training: {steps: 5, lr: 0.1}
"""
BOMB = """\
a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
"""  # a "billion laughs": 9**9 values once expanded


@pytest.fixture(autouse=True)
def _in_tmp_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # messages name files as the user wrote them: c.yaml


def mgrun(cwd: Path, *args: str, timeout: float = 60) -> tuple[int, list[str]]:
    """Run the real CLI in `cwd`; (exit code, stderr lines). Fails if a store appeared."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("MLFLOW_TRACKING_URI", None)
    done = subprocess.run(
        [*MGRUN, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert not (cwd / "mlflow.db").exists() and not (cwd / "mlruns").exists()
    return done.returncode, done.stderr.strip().splitlines()


def one_error(cwd: Path, *args: str, timeout: float = 60) -> str:
    code, lines = mgrun(cwd, *args, timeout=timeout)
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith("error: ")
    return lines[0]


def config_error(path: Path, overrides: tuple[str, ...] = ()) -> str:
    with pytest.raises(ConfigError) as info:
        load_run_config(path, overrides)
    assert "\n" not in str(info.value)
    return str(info.value)


def write(tmp_path: Path, name: str, text: str) -> Path:
    (tmp_path / name).write_text(text)
    return Path(name)


# YAML: bombs, size, nesting, keys, numbers


@pytest.mark.timeout(60)
def test_an_alias_bomb_is_refused_at_once_by_the_cli(tmp_path):
    write(tmp_path, "bomb.yaml", BOMB)
    start = time.monotonic()
    line = one_error(tmp_path, "train", "bomb.yaml", "--no-progress")
    assert time.monotonic() - start < 30
    assert line.startswith("error: bomb.yaml: f: more than 100,000 values with its aliases")
    assert "(line 6)" in line


@pytest.mark.timeout(60)
def test_deep_nesting_is_refused_by_the_cli_without_a_recursion_error(tmp_path):
    write(tmp_path, "deep.yaml", "name: " + "[" * 10_000 + "]" * 10_000 + "\n")
    line = one_error(tmp_path, "train", "deep.yaml", "--no-progress")
    assert line.startswith("error: deep.yaml: name[0][0]")
    assert "nested more than 32 levels deep (line 1); flatten it" in line
    assert len(line) < 200


def test_deep_mappings_and_deep_set_values_are_refused(tmp_path):
    path = write(tmp_path, "c.yaml", "model: " + "{a: " * 5000 + "1" + "}" * 5000 + "\n")
    assert "c.yaml: model.a.a.a" in config_error(path)
    deep = "[" * 5000 + "]" * 5000
    msg = config_error(write(tmp_path, "ok.yaml", BASE), (f"model.hidden={deep}",))
    assert msg.startswith("ok.yaml: --set model.hidden[0][0]")
    assert "nested more than 32 levels deep" in msg


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a: &a [*a]\n", "a[0]: alias *a is inside its own anchor (line 1)"),
        ("seed: " + "1" * 5000 + "\n", "seed: a number or date of 5,000 characters (line 1)"),
        ("seed: 2020-13-45\n", "seed: cannot read 2020-13-45 (month must be in 1..12)"),
        ("seed: !!int abc\n", "seed: cannot read abc"),
        ("[a, b]: 1\n", "c.yaml: a key must be text, got a list (line 1)"),
        ("training: {{a: 1}: 2}\n", "training: a key must be text, got a mapping (line 1)"),
        ("x: &k [1]\n? *k\n: 1\n", "c.yaml: a key must be text (line 2)"),
    ],
)
def test_yaml_that_would_crash_or_hang_the_loader_gets_a_message(tmp_path, text, expected):
    msg = config_error(write(tmp_path, "c.yaml", text))
    assert expected in msg


def test_a_list_as_a_key_is_not_blamed_on_tags(tmp_path):
    msg = config_error(write(tmp_path, "c.yaml", "[a, b]: 1\n"))
    assert "tag" not in msg and "write `name: value` with a plain name" in msg


def test_set_values_get_the_same_guards():
    bomb = "[" + ", ".join(["&a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"] + ["*a"] * 20_000) + "]"
    with pytest.raises(ConfigError, match=r"^c.yaml: --set model.hidden: more than 100,000"):
        parse_override(f"model.hidden={bomb}", "c.yaml")
    with pytest.raises(ConfigError, match=r"--set seed: a number or date of 200 characters"):
        parse_override("seed=" + "9" * 200)
    with pytest.raises(ConfigError, match=r"--set seed: 1,000,001 characters, over the limit"):
        parse_override("seed=" + "9" * (MAX_YAML_BYTES + 1))
    with pytest.raises(ConfigError, match=r"^--set name: malformed value '\\udcff'"):
        parse_override("name=\udcff")  # an undecodable byte on the command line


def test_a_big_file_is_refused_from_its_size_without_reading_it(tmp_path):
    path = Path("big.yaml")
    with open(path, "wb") as f:
        f.truncate(10**10)  # sparse: reading it would take minutes
    start = time.monotonic()
    with pytest.raises(ConfigError) as info:
        read_yaml(path)
    assert time.monotonic() - start < 5
    assert str(info.value) == (
        f"{path}: 10,000,000,000 bytes, over the limit of 1,000,000; "
        "a config is a few KB; check the path"
    )


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
def test_a_file_that_claims_size_0_is_read_no_further_than_the_limit():
    assert os.stat("/proc/self/status").st_size == 0
    with pytest.raises(FileProblem, match=r"^larger than the limit of 10 bytes; shorten it$"):
        read_file("/proc/self/status", 10, "shorten it")
    with pytest.raises(FileProblem, match=r"^a socket or device, not a regular file"):
        read_file("/dev/zero", 10, "")


def test_many_values_without_aliases_are_counted_too(tmp_path):
    text = "name: [" + "1, " * 100_001 + "1]\n"
    assert len(text) < MAX_YAML_BYTES
    msg = config_error(write(tmp_path, "c.yaml", text))
    assert msg.startswith("c.yaml: name: more than 100,000 values")


def test_a_file_that_is_not_text_is_named_in_one_line(tmp_path):
    path = Path("c.yaml")
    path.write_bytes(b"name: a\x00b\n")
    assert config_error(path) == f"{path}: not YAML text (character #x0000 at position 7); " + (
        "check the path"
    )


def test_a_config_that_is_some_other_file_is_quoted_only_in_part(tmp_path):
    secret = "root:x:0:0:" + "S3CRET" * 20
    msg = config_error(write(tmp_path, "c.yaml", secret + "\n"))
    assert "S3CRET" * 6 not in msg and "..." in msg


# Sizes of datasets and models


@pytest.mark.timeout(60)
def test_a_billion_samples_is_refused_by_the_cli_before_any_memory_is_used(tmp_path):
    write(tmp_path, "c.yaml", "dataset: {n_samples: 1000000000}\n")
    line = one_error(tmp_path, "train", "c.yaml", "--no-progress")
    assert line == (
        "error: c.yaml: dataset.n_samples: must be <= 1000000, got 1000000000; use e.g. 1000"
    )


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("dataset.n_samples=1000001", "dataset.n_samples: must be <= 1000000"),
        ("model.hidden=[4097]", "model.hidden: must be <= 4096, got 4097"),
        (f"model.hidden={[1] * 17}", "model.hidden: must have at most 16 items, got 17"),
        ("model.hidden=[1000, 1000]", "1,005,001 weights, over the limit of 1,000,000"),
        ("dataset.n_classes=1001", "dataset.n_classes: must be <= 1000"),
        ("training.steps=1000001", "training.steps: must be <= 1000000"),
        ("training.batch_size=1000001", "training.batch_size: must be <= 1000000"),
        ("dataset.noise=1e300", "dataset.noise: must be <= 10.0, got 1e+300; use e.g. 0.1"),
    ],
)
def test_sizes_have_documented_upper_limits(tmp_path, override, expected):
    msg = config_error(write(tmp_path, "c.yaml", BASE), (override,))
    assert msg.startswith("c.yaml: --set ") and expected in msg


def test_the_weight_limit_counts_the_csv_features(tmp_path):
    header = ",".join(f"x{i}" for i in range(300)) + ",y\n"
    rows = "".join(",".join(["1"] * 300) + f",{c}\n" for c in "abab")
    write(tmp_path, "d.csv", header + rows)
    cfg = "dataset: {kind: csv, path: d.csv, label: y}\nmodel: {hidden: [4096]}\n"
    write(tmp_path, "c.yaml", cfg)
    line = one_error(tmp_path, "train", "c.yaml", "--no-progress")
    assert "c.yaml: model.hidden: 300 inputs -> [4096] -> 1 outputs is 1,236,993 weights" in line


# Sweeps


def write_sweep(tmp_path: Path, text: str) -> Path:
    (tmp_path / "tiny.yaml").write_text(BASE)
    return write(tmp_path, "s.yaml", "base: tiny.yaml\n" + text)


@pytest.mark.timeout(60)
def test_a_billion_random_trials_are_refused_by_the_cli_before_any_is_drawn(tmp_path):
    text = "method: random\nn_trials: 1000000000\nseeds: [1, 2]\n"
    write_sweep(tmp_path, text + "params: {training.lr: {loguniform: [0.01, 1]}}\n")
    line = one_error(tmp_path, "sweep", "s.yaml", "--no-progress")
    assert line == (
        "error: s.yaml: n_trials: 1,000,000,000 points x 2 seed(s) = 2,000,000,000 trials, over "
        "the limit of 100,000; lower n_trials or use fewer seeds"
    )


def test_a_grid_of_a_trillion_points_is_counted_not_expanded(tmp_path):
    values = str(list(range(1000)))
    params = "".join(f"  {k}: {values}\n" for k in ("training.lr", "training.l2", "training.eps"))
    with pytest.raises(ConfigError) as info:
        load_sweep(write_sweep(tmp_path, "method: grid\nparams:\n" + params))
    assert str(info.value).startswith(
        "s.yaml: params: 1,000,000,000 points x 1 seed(s) = 1,000,000,000 trials, over the limit "
        "of 100,000; vary fewer keys or values"
    )


@pytest.mark.timeout(300)
def test_a_sweep_of_20000_trials_loads_and_lists_in_seconds(tmp_path):
    lrs = [round(0.001 * (i + 1), 4) for i in range(100)]
    l2s = [round(1e-5 * (i + 1), 6) for i in range(50)]
    text = f"params:\n  training.lr: {lrs}\n  training.l2: {l2s}\n  model.hidden: [[4], [8]]\n"
    path = write_sweep(tmp_path, text + "seeds: [1, 2]\n")
    start = time.process_time()
    sweep = load_sweep(path)
    listed = trials_yaml(sweep)
    seconds = time.process_time() - start
    assert len(sweep.trials) == 20_000 and listed.count("config_hash:") == 20_000
    assert seconds < 40  # minutes before: every trial validated in full, and yaml.safe_dump


def test_trial_configs_and_hashes_are_those_of_a_full_build_per_trial(tmp_path):
    text = "params:\n  training.lr: [0.05, 0.5]\n  model.hidden: [[4], [8, 8]]\n"
    text += "  dataset.kind: [moons, spirals]\n  training.loss: [cross_entropy]\nseeds: [1, 2]\n"
    path = write_sweep(tmp_path, text)
    sweep = load_sweep(path)
    base = yaml.safe_load(BASE)
    assert len(sweep.trials) == 16
    for t in sweep.trials:
        data = copy.deepcopy(base)
        for key, value in t.params.items():
            set_dotted(data, key, copy.deepcopy(value), "")
        data["seed"] = t.seed
        full = run_config_from_dict(data, str(path), str(tmp_path))
        assert t.spec.config == full and t.spec.config.to_dict() == full.to_dict()


def test_trial_identities_did_not_change():
    grid = load_sweep(ROOT / "experiments" / "moons_grid.yaml")
    assert grid.trials[0].spec.config_hash.startswith("969fbe2d85698be3d5e545cd50ca8a3c")
    assert sweep_hash(grid).startswith("5c0214bdd77f59f23d3af9297c7448d7")
    rand = load_sweep(ROOT / "experiments" / "spirals_random.yaml")
    assert sweep_hash(rand).startswith("8e75bb0dd011c2c1be912522df197bd6")


def test_the_trial_list_loads_back_as_yaml_safe_dump_wrote_it():
    for name in ("moons_grid.yaml", "spirals_random.yaml"):
        sweep = load_sweep(ROOT / "experiments" / name)
        trials = [
            {
                "index": t.spec.index,
                "config_hash": t.spec.config_hash,
                "params": t.params,
                "seed": t.seed,
                "config": t.spec.config.to_dict(),
            }
            for t in sweep.trials
        ]
        assert yaml.safe_load(trials_yaml(sweep)) == yaml.safe_load(yaml.safe_dump(trials))


def test_a_sweep_cannot_start_a_million_processes(tmp_path):
    text = "params: {training.lr: [1]}\nexecution: {n_jobs: 1000000}\n"
    with pytest.raises(ConfigError, match=r"execution.n_jobs: must be <= 1024"):
        load_sweep(write_sweep(tmp_path, text))
    sweep = load_sweep(write_sweep(tmp_path, "params: {training.lr: [1]}\n"))
    with pytest.raises(ConfigError, match=r"^--n-jobs 1000000: must be <= 1024"):
        resolve_execution(sweep, None, 1_000_000, None)


# CSV data


def csv_error(tmp_path: Path, path: str | Path, label: str = "y") -> str:
    with pytest.raises(DataError) as info:
        read_csv(tmp_path / path, label, None)
    assert "\n" not in str(info.value) and info.value.exit_code == 2
    return str(info.value)


@pytest.mark.timeout(30)
def test_csv_paths_that_are_not_regular_files_are_refused_without_hanging(tmp_path):
    os.symlink("loop2", tmp_path / "loop1")
    os.symlink("loop1", tmp_path / "loop2")
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "dir").mkdir()
    assert csv_error(tmp_path, "loop1").endswith(
        "dataset.path: a loop of symbolic links; point the path at a file"
    )
    assert csv_error(tmp_path, "fifo") == (
        "fifo: dataset.path: a named pipe, not a regular file; give the path of a file"
    )
    assert "dir: dataset.path: a directory, not a file" in csv_error(tmp_path, "dir")
    assert "/dev/zero: dataset.path: a socket or device" in csv_error(tmp_path, "/dev/zero")


@pytest.mark.timeout(60)
def test_a_fifo_as_csv_path_fails_cleanly_in_the_cli(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    write(tmp_path, "c.yaml", "dataset: {kind: csv, path: fifo, label: y}\n")
    line = one_error(tmp_path, "train", "c.yaml", "--no-progress", timeout=30)
    assert line == (
        "error: fifo: dataset.path: a named pipe, not a regular file; give the path of a file"
    )


def test_a_huge_csv_file_is_refused_from_its_size(tmp_path):
    with open(tmp_path / "big.csv", "wb") as f:
        f.truncate(60_000_000)
    assert csv_error(tmp_path, "big.csv") == (
        "big.csv: dataset.path: 60,000,000 bytes, over the limit of 50,000,000; "
        "use a smaller sample of the data"
    )


def test_csv_text_must_be_utf8(tmp_path):
    (tmp_path / "d.csv").write_bytes(b"x,y\n1,caf\xe9\n2,b\n")
    assert csv_error(tmp_path, "d.csv") == (
        "d.csv: dataset.path: not UTF-8 text (byte 0xe9 on line 2); save it as UTF-8"
    )
    (tmp_path / "d.csv").write_bytes(b"x,y\n1,a\x00\n")
    assert "d.csv: dataset.path: not text (a NUL byte on line 2)" in csv_error(tmp_path, "d.csv")


def test_an_empty_label_names_its_row(tmp_path):
    write(tmp_path, "d.csv", "x,y\n1,a\n2, \n3,b\n")
    assert csv_error(tmp_path, "d.csv") == (
        "d.csv: row 3, column 'y': empty label; write the row's class, or remove the row"
    )


def test_messages_quote_only_a_clip_of_the_file(tmp_path):
    secret = "PASSWORD=" + "hunter2" * 30
    write(tmp_path, "d.csv", secret + "\n1\n")
    msg = csv_error(tmp_path, "d.csv")
    assert "hunter2" * 6 not in msg and len(msg) < 300
    write(tmp_path, "d.csv", "x,y\n" + "9" * 50 + "x,a\n2,b\n")
    assert "'" + "9" * 40 + "'... is not a number" in csv_error(tmp_path, "d.csv")
    many = ",".join(f"column_{i}" for i in range(10_000))
    write(tmp_path, "d.csv", many + "\n" + ",".join(["1"] * 10_000) + "\n")
    assert len(csv_error(tmp_path, "d.csv", label="zzz")) < 300


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc")
def test_proc_environ_does_not_print_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("MGRUN_TEST_SECRET", "s3cr3t-value")
    write(tmp_path, "c.yaml", "dataset: {kind: csv, path: /proc/self/environ, label: y}\n")
    line = one_error(tmp_path, "train", "c.yaml", "--no-progress")
    assert "s3cr3t" not in line and "=" not in line.split("dataset.path:")[1]


# Names


@pytest.mark.timeout(60)
@pytest.mark.parametrize("where", ["name", "experiment", "--experiment"])
def test_names_over_mlflows_limit_are_refused_before_any_store(tmp_path, where):
    long = "n" * 501
    config = BASE.replace("name: tiny", f"name: {long}") if where == "name" else BASE
    if where == "experiment":
        config += f"tracking: {{experiment: {long}}}\n"
    write(tmp_path, "c.yaml", config)
    extra = ["--experiment", long] if where == "--experiment" else []
    line = one_error(tmp_path, "train", "c.yaml", "--no-progress", *extra)
    field = {"name": "c.yaml: name", "experiment": "c.yaml: tracking.experiment"}
    prefix = field.get(where, "--experiment")
    assert (
        line == f"error: {prefix}: 501 characters, over MLflow's limit of 500; use a shorter name"
    )


def test_a_sweep_refuses_a_long_experiment_before_reading_anything(tmp_path):
    from runner.commands.sweep import sweep_command

    with pytest.raises(ConfigError, match=r"^--experiment: 501 characters"):
        sweep_command(tmp_path / "missing.yaml", [], experiment="e" * 501)


# Credentials


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        (
            "postgresql://user:pa55@db.example.org/mlflow",
            "postgresql://user:***@db.example.org/mlflow",
        ),
        ("mysql+pymysql://u:p%40ss@host/db?x=1", "mysql+pymysql://u:***@host/db?x=1"),
        ("http://alice:secret@tracking:5000", "http://alice:***@tracking:5000"),
        ("postgresql://user@host/db", "postgresql://user@host/db"),
        ("sqlite:////tmp/mlflow.db", "sqlite:////tmp/mlflow.db"),
        ("http://[bad", "http://[bad"),
    ],
)
def test_mask_uri_hides_the_password_only(uri, shown):
    assert mask_uri(uri) == shown


def test_store_errors_and_summaries_do_not_show_the_password(capsys):
    from runner.commands.train import _summary
    from runner.errors import BackendError
    from runner.tracking import Tracker

    uri = "postgresql://user:pa55word@127.0.0.1:1/db"
    with pytest.raises(BackendError) as info:
        Tracker(uri, "e")
    assert "pa55word" not in str(info.value) and "user:***@127.0.0.1" in str(info.value)
    result = SimpleNamespace(final_metrics={}, status="FINISHED", seconds=1.0, reason=None)
    _summary(result, "abc", uri, explicit_uri=True, experiment_id="1")
    out = capsys.readouterr()
    assert "pa55word" not in out.out + out.err and "user:***@" in out.out


def test_clip_and_quote_keep_one_short_line():
    assert clip("a\nb" * 50, 10) == "a\\nba\\nba\\nba..."
    assert quote("x" * 50) == "'" + "x" * 40 + "'..."
    assert quote("short") == "'short'"
