"""Datasets: seeded generators, the train/test split, standardization and CSV files."""

from __future__ import annotations

import dataclasses
import math
import random
from collections import Counter
from pathlib import Path

import pytest

from runner.config import DatasetConfig
from runner.datasets import (
    make_circles,
    make_dataset,
    make_moons,
    make_spirals,
    make_xor,
    read_csv,
)
from runner.errors import DataError

GENERATED = [
    DatasetConfig(kind="moons"),
    DatasetConfig(kind="circles"),
    DatasetConfig(kind="xor"),
    DatasetConfig(kind="blobs", n_classes=4),
    DatasetConfig(kind="spirals", n_classes=3),
]


@pytest.mark.parametrize("cfg", GENERATED, ids=lambda c: c.kind)
def test_generated_datasets_are_deterministic_per_seed(cfg: DatasetConfig):
    a, b, c = make_dataset(cfg, 1), make_dataset(cfg, 1), make_dataset(cfg, 2)
    assert a == b
    assert a.X_train != c.X_train


@pytest.mark.parametrize("cfg", GENERATED, ids=lambda c: c.kind)
def test_generated_shapes_labels_and_split(cfg: DatasetConfig):
    d = make_dataset(cfg, 0)
    assert (len(d.X_train), len(d.X_test)) == (80, 20)
    assert (len(d.y_train), len(d.y_test)) == (80, 20)
    assert d.n_features == 2 and d.feature_names == ("x1", "x2")
    assert all(len(row) == 2 and all(isinstance(v, float) for v in row) for row in d.X_train)
    labels = Counter(d.y_train + d.y_test)
    assert sorted(labels) == list(range(cfg.n_classes))
    assert max(labels.values()) - min(labels.values()) <= 1  # balanced classes
    assert d.n_classes == cfg.n_classes == len(d.class_names)


def test_moons_are_two_half_circles_like_sklearn():
    X, y = make_moons(50, 0.0, random.Random(0))
    up = [p for p, t in zip(X, y, strict=True) if t == 0]
    down = [p for p, t in zip(X, y, strict=True) if t == 1]
    assert len(up) == len(down) == 25
    assert all(math.isclose(math.hypot(px, py), 1.0) and py >= -1e-12 for px, py in up)
    assert all(math.isclose(math.hypot(px - 1, py - 0.5), 1.0) and py <= 0.5 for px, py in down)
    assert up[0] == pytest.approx((1.0, 0.0)) and up[-1] == pytest.approx((-1.0, 0.0))
    assert down[0] == pytest.approx((0.0, 0.5)) and down[-1] == pytest.approx((2.0, 0.5))


def test_noise_is_gaussian_with_the_configured_std():
    clean, _ = make_moons(2000, 0.0, random.Random(0))
    noisy, _ = make_moons(2000, 0.2, random.Random(0))
    diffs = [a - b for p, q in zip(noisy, clean, strict=True) for a, b in zip(p, q, strict=True)]
    std = math.sqrt(sum(d * d for d in diffs) / len(diffs))
    assert 0.19 < std < 0.21


def test_circles_are_an_outer_and_an_inner_ring():
    X, y = make_circles(40, 0.0, random.Random(0))
    radii = {
        t: {round(math.hypot(*p), 9) for p, tt in zip(X, y, strict=True) if tt == t} for t in (0, 1)
    }
    assert radii == {0: {1.0}, 1: {0.5}}


def test_xor_labels_are_the_xor_of_the_signs():
    X, y = make_xor(40, 0.0, random.Random(0))
    assert all(t == int(px * py < 0) for (px, py), t in zip(X, y, strict=True))
    assert len(set(X)) == 4


def test_spirals_have_k_arms_inside_the_unit_disc():
    X, y = make_spirals(90, 3, 0.2, random.Random(0))
    assert Counter(y) == {0: 30, 1: 30, 2: 30}
    assert all(math.hypot(*p) <= 1.0 + 1e-12 for p in X)


def test_no_test_split_with_test_fraction_zero():
    d = make_dataset(DatasetConfig(kind="moons", test_fraction=0.0), 1337)
    assert len(d.X_train) == 100 and d.X_test == () and d.y_test == ()


def test_the_split_is_a_shuffled_partition():
    whole = make_dataset(DatasetConfig(test_fraction=0.0), 3)
    split = make_dataset(DatasetConfig(test_fraction=0.3), 3)
    assert len(split.X_test) == 30
    pairs = Counter(zip(split.X_train + split.X_test, split.y_train + split.y_test, strict=True))
    assert pairs == Counter(zip(whole.X_train, whole.y_train, strict=True))
    assert set(split.y_test) == {0, 1}  # shuffled, not the tail of one class


def test_tiny_splits_keep_a_point_on_each_side():
    d = make_dataset(DatasetConfig(n_samples=4, test_fraction=0.01), 0)
    assert (len(d.X_train), len(d.X_test)) == (3, 1)
    d = make_dataset(DatasetConfig(n_samples=4, test_fraction=0.99), 0)
    assert (len(d.X_train), len(d.X_test)) == (1, 3)


def _mean_std(col: list[float]) -> tuple[float, float]:
    m = sum(col) / len(col)
    return m, math.sqrt(sum((v - m) ** 2 for v in col) / len(col))


def test_standardize_uses_the_train_split_statistics():
    cfg = DatasetConfig(kind="blobs", n_classes=3, noise=0.5, test_fraction=0.25)
    raw = make_dataset(cfg, 4)
    std = make_dataset(dataclasses.replace(cfg, standardize=True), 4)
    assert raw.y_train == std.y_train and raw.y_test == std.y_test
    for j in range(2):
        m, s = _mean_std([row[j] for row in raw.X_train])
        assert _mean_std([row[j] for row in std.X_train]) == pytest.approx((0.0, 1.0), abs=1e-12)
        expected = [(row[j] - m) / s for row in raw.X_test]
        assert [row[j] for row in std.X_test] == pytest.approx(expected)


# --- CSV ---------------------------------------------------------------------------------------


def csv_cfg(**kw) -> DatasetConfig:
    return DatasetConfig(**{"kind": "csv", "path": "d.csv", "label": "y", "n_classes": None, **kw})


def write_csv(tmp_path: Path, text: str) -> Path:
    (tmp_path / "d.csv").write_text(text)
    return tmp_path


def test_csv_happy_path(tmp_path: Path):
    rows = "".join(f"{i},{i * 0.5},{'bird' if i % 3 else 'ant'},{i % 2}\n" for i in range(12))
    base = write_csv(tmp_path, "a,b,y,c\n" + rows + "\n")
    d = make_dataset(csv_cfg(test_fraction=0.25), 0, base)
    assert d.feature_names == ("a", "b", "c")
    assert d.class_names == ("ant", "bird")
    assert (len(d.X_train), len(d.X_test), d.n_features, d.n_classes) == (9, 3, 3, 2)
    for x, t in zip(d.X_train + d.X_test, d.y_train + d.y_test, strict=True):
        assert x[1] == x[0] * 0.5 and x[2] == x[0] % 2
        assert t == (1 if int(x[0]) % 3 else 0)


def test_csv_features_pick_and_order_columns(tmp_path: Path):
    base = write_csv(tmp_path, "a,b,y,note\n1,2,x,hi\n3,4,z,there\n")
    d = make_dataset(csv_cfg(features=("b", "a"), test_fraction=0.0), 0, base)
    assert sorted(d.X_train) == [(2.0, 1.0), (4.0, 3.0)]
    assert d.feature_names == ("b", "a")


def test_csv_numeric_labels_sort_as_numbers(tmp_path: Path):
    base = write_csv(tmp_path, "x,y\n1,10\n2,2\n3,2\n4,10\n5,-1\n")
    d = make_dataset(csv_cfg(test_fraction=0.0), 0, base)
    assert d.class_names == ("-1", "2", "10")
    assert dict(zip((x[0] for x in d.X_train), d.y_train, strict=True)) == {
        1.0: 2,
        2.0: 1,
        3.0: 1,
        4.0: 2,
        5.0: 0,
    }


def test_csv_path_is_relative_to_the_config_dir(tmp_path: Path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "d.csv").write_text("x,y\n1,a\n2,b\n")
    d = make_dataset(csv_cfg(path="data/d.csv", test_fraction=0.0), 0, tmp_path)
    assert d.n_classes == 2


def test_shipped_csv_example_reads():
    root = Path(__file__).resolve().parents[2] / "configs"
    X, y, names, classes = read_csv(root / "data" / "birds.csv", "species", None)
    assert names == ("wingspan_cm", "mass_g") and classes == ("robin", "sparrow")
    assert len(X) == len(y) >= 30


CSV_ERRORS = [
    ("", "d.csv: the file is empty"),
    ("x,y\n", "d.csv: no data rows"),
    ("x,lable\n1,a\n", "d.csv: dataset.label: no column 'y'; choose one of x, lable"),
    ("x,yy\n1,a\n", "d.csv: dataset.label: no column 'y'; did you mean 'yy'?"),
    ("x,y,x\n1,a,2\n", "d.csv: row 1: duplicate column names"),
    ("x,y\n1,a\n2,b\nthree,a\n", "d.csv: row 4, column 'x': 'three' is not a number"),
    ("x,y\n1,a\n,b\n", "d.csv: row 3, column 'x': '' is not a number"),
    ("x,y\n1,a\nnan,b\n", "d.csv: row 3, column 'x': 'nan' is not a number"),
    ("x,y\n1,a\n2,b,5\n", "d.csv: row 3: has 3 columns, the header has 2"),
    ("x,y\n1,a\n\n2\n", "d.csv: row 4: has 1 columns, the header has 2"),
    ("x,y\n1,a\n2,a\n", "d.csv: column 'y': needs at least 2 classes, found 1 ('a')"),
    ("y\na\nb\n", "d.csv: dataset.features: no columns besides 'y'"),
]


@pytest.mark.parametrize(("text", "expected"), CSV_ERRORS)
def test_csv_errors_name_the_file_row_and_column(tmp_path: Path, text: str, expected: str):
    with pytest.raises(DataError) as info:
        make_dataset(csv_cfg(), 0, write_csv(tmp_path, text))
    msg = str(info.value)
    assert expected in msg and "\n" not in msg and ";" in msg


def test_csv_missing_feature_column(tmp_path: Path):
    base = write_csv(tmp_path, "x1,x2,y\n1,2,a\n")
    with pytest.raises(DataError, match=r"dataset\.features: no column 'xx2'; did you mean 'x2'\?"):
        make_dataset(csv_cfg(features=("x1", "xx2")), 0, base)


def test_csv_missing_file(tmp_path: Path):
    with pytest.raises(DataError, match=r"nope\.csv: dataset\.path: file not found"):
        make_dataset(csv_cfg(path="nope.csv"), 0, tmp_path)
