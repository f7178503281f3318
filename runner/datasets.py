"""Seeded toy datasets and CSV files, split into train/test lists of plain floats and ints.

Every random draw comes from one `random.Random(seed)`: the same config gives the same points,
the same split and the same scaling in any process. Labels are ints 0..k-1.
"""

from __future__ import annotations

import csv
import io
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from runner.config.limits import MAX_CSV_BYTES, MAX_SAMPLES, FileProblem, read_file
from runner.config.run import DatasetConfig
from runner.config.schema import did_you_mean
from runner.errors import DataError
from runner.redact import clip, quote

Rows = list[tuple[float, ...]]


@dataclass(frozen=True)
class Dataset:
    X_train: tuple[tuple[float, ...], ...]
    y_train: tuple[int, ...]
    X_test: tuple[tuple[float, ...], ...]  # empty when test_fraction is 0
    y_test: tuple[int, ...]
    n_features: int
    n_classes: int
    feature_names: tuple[str, ...]
    class_names: tuple[str, ...]  # class_names[i] is the original label of class i
    # (mean, std) per feature that `standardize` divided out, so a model can take raw features
    scale: tuple[tuple[float, ...], tuple[float, ...]] | None = None


def make_moons(n: int, noise: float, rng: random.Random) -> tuple[Rows, list[int]]:
    """Two interleaving half circles (as scikit-learn's make_moons): upper 0, lower 1."""
    n_up = n // 2
    n_down = n - n_up
    X: Rows = []
    for i in range(n_up):
        t = math.pi * i / max(n_up - 1, 1)
        X.append((math.cos(t), math.sin(t)))
    for i in range(n_down):
        t = math.pi * i / max(n_down - 1, 1)
        X.append((1 - math.cos(t), 0.5 - math.sin(t)))
    return _jitter(X, noise, rng), [0] * n_up + [1] * n_down


def make_circles(
    n: int, noise: float, rng: random.Random, factor: float = 0.5
) -> tuple[Rows, list[int]]:
    """A ring of radius 1 (class 0) around a ring of radius `factor` (class 1)."""
    n_out = n // 2
    n_in = n - n_out
    X = [
        (math.cos(2 * math.pi * i / n_out), math.sin(2 * math.pi * i / n_out)) for i in range(n_out)
    ]
    X += [
        (factor * math.cos(2 * math.pi * i / n_in), factor * math.sin(2 * math.pi * i / n_in))
        for i in range(n_in)
    ]
    return _jitter(X, noise, rng), [0] * n_out + [1] * n_in


def make_blobs(n: int, n_classes: int, noise: float, rng: random.Random) -> tuple[Rows, list[int]]:
    """`n_classes` gaussian blobs (std `noise`) centred evenly on a circle of radius 2."""
    X: Rows = []
    y: list[int] = []
    for k, size in enumerate(_sizes(n, n_classes)):
        a = 2 * math.pi * k / n_classes
        X += [(2 * math.cos(a), 2 * math.sin(a))] * size
        y += [k] * size
    return _jitter(X, noise, rng), y


def make_xor(n: int, noise: float, rng: random.Random) -> tuple[Rows, list[int]]:
    """Four clusters at (+-1, +-1); a cluster's label is 1 when its coordinates' signs differ."""
    corners = [(1.0, 1.0), (-1.0, -1.0), (-1.0, 1.0), (1.0, -1.0)]
    X: Rows = []
    y: list[int] = []
    for (cx, cy), size in zip(corners, _sizes(n, 4), strict=True):
        X += [(cx, cy)] * size
        y += [int(cx * cy < 0)] * size
    return _jitter(X, noise, rng), y


def make_spirals(
    n: int, n_classes: int, noise: float, rng: random.Random
) -> tuple[Rows, list[int]]:
    """`n_classes` interleaved spiral arms (as in CS231n); `noise` is the std of the angle."""
    X: Rows = []
    y: list[int] = []
    for k, size in enumerate(_sizes(n, n_classes)):
        for i in range(size):
            r = i / max(size - 1, 1)
            t = 4 * (k + r) + rng.gauss(0, noise)
            X.append((r * math.sin(t), r * math.cos(t)))
        y += [k] * size
    return X, y


def _sizes(n: int, k: int) -> list[int]:
    """n points shared as evenly as possible among k groups."""
    return [n // k + (1 if i < n % k else 0) for i in range(k)]


def _jitter(X: Rows, noise: float, rng: random.Random) -> Rows:
    return [tuple(v + rng.gauss(0, noise) for v in row) for row in X]


def make_dataset(cfg: DatasetConfig, seed: int, base_dir: str | Path = ".") -> Dataset:
    """The configured dataset, split (and standardized) with draws from `random.Random(seed)`."""
    rng = random.Random(seed)
    n, noise, k = cfg.n_samples, cfg.noise, cfg.n_classes or 2
    names: tuple[str, ...] = ("x1", "x2")
    if cfg.kind == "csv":
        X, y, names, classes = read_csv(Path(base_dir) / cfg.path, cfg.label, cfg.features)
    else:
        X, y = {
            "moons": lambda: make_moons(n, noise, rng),
            "circles": lambda: make_circles(n, noise, rng),
            "blobs": lambda: make_blobs(n, k, noise, rng),
            "xor": lambda: make_xor(n, noise, rng),
            "spirals": lambda: make_spirals(n, k, noise, rng),
        }[cfg.kind]()
        classes = tuple(str(c) for c in range(k))
    Xtr, ytr, Xte, yte = split(X, y, cfg.test_fraction, rng)
    scale = None
    if cfg.standardize:
        scale = feature_stats(Xtr)
        Xtr, Xte = _scaled(Xtr, *scale), _scaled(Xte, *scale)
    return Dataset(
        tuple(Xtr),
        tuple(ytr),
        tuple(Xte),
        tuple(yte),
        len(names),
        len(classes),
        names,
        classes,
        scale,
    )


def split(
    X: Rows, y: list[int], test_fraction: float, rng: random.Random
) -> tuple[Rows, list[int], Rows, list[int]]:
    """Shuffle, then hold out round(test_fraction * n) points (at least 1, leaving 1 to train)."""
    order = list(range(len(X)))
    rng.shuffle(order)
    n_test = 0 if test_fraction == 0 else min(len(X) - 1, max(1, round(test_fraction * len(X))))
    test, train = order[:n_test], order[n_test:]
    return [X[i] for i in train], [y[i] for i in train], [X[i] for i in test], [y[i] for i in test]


def feature_stats(rows: Rows) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Each feature's mean and std over `rows` (a constant feature gets std 1: it is centred)."""
    cols = list(zip(*rows, strict=True))
    mean = tuple(sum(c) / len(c) for c in cols)
    std = tuple(
        math.sqrt(sum((v - m) ** 2 for v in c) / len(c)) for c, m in zip(cols, mean, strict=True)
    )
    return mean, tuple(s if s > 0 else 1.0 for s in std)


def _scaled(rows: Rows, mean: Sequence[float], std: Sequence[float]) -> Rows:
    return [tuple((v - m) / s for v, m, s in zip(row, mean, std, strict=True)) for row in rows]


def read_csv(
    path: Path, label: str, features: tuple[str, ...] | None
) -> tuple[Rows, list[int], tuple[str, ...], tuple[str, ...]]:
    """(X, y, feature_names, class_names) from a CSV file with a header row."""
    name = _shown(path)
    rows = _read_rows(path, name)
    header = [h.strip() for h in rows[0][1]]
    if len(set(header)) != len(header):
        raise DataError(f"{name}: row {rows[0][0]}: duplicate column names; name each column once")
    features = tuple(features) if features else tuple(h for h in header if h != label)
    for key, cols in (("dataset.label", (label,)), ("dataset.features", features)):
        for col in cols:
            if col not in header:
                # the header is whatever file dataset.path names: quote only clips of it
                hint = clip(did_you_mean(col, [clip(h) for h in header]), 200)
                raise DataError(f"{name}: {key}: no column {quote(col)}; {hint}")
    if not features:
        raise DataError(
            f"{name}: dataset.features: no columns besides {label!r}; add feature columns"
        )
    if len(rows) < 2:
        raise DataError(f"{name}: no data rows after the header; add data rows")
    li, idx = header.index(label), [header.index(c) for c in features]
    X: Rows = []
    labels: list[str] = []
    for r, row in rows[1:]:
        if len(row) != len(header):
            problem = f"has {len(row)} columns, the header has {len(header)}"
            raise DataError(f"{name}: row {r}: {problem}; fix the row")
        X.append(tuple(_number(row[i], name, r, header[i]) for i in idx))
        labels.append(row[li].strip())
        if not labels[-1]:
            fix = "write the row's class, or remove the row"
            raise DataError(f"{name}: row {r}, column {quote(label)}: empty label; {fix}")
    classes = sorted(set(labels), key=_label_order)
    if len(classes) < 2:
        problem = f"needs at least 2 classes, found {len(classes)} ({quote(classes[0])})"
        raise DataError(f"{name}: column {label!r}: {problem}; check dataset.label")
    code = {c: i for i, c in enumerate(classes)}
    return X, [code[c] for c in labels], features, tuple(classes)


def _read_rows(path: Path, name: str) -> list[tuple[int, list[str]]]:
    """The non-blank rows of a CSV file with their line numbers; the first one is the header."""
    try:
        data = read_file(path, MAX_CSV_BYTES, "use a smaller sample of the data")
        text = data.decode("utf-8-sig")
        if "\0" in text:  # binary, or /proc/self/environ: nothing a message should quote
            line = text.count("\n", 0, text.index("\0")) + 1
            problem = f"not text (a NUL byte on line {line})"
            raise DataError(f"{name}: dataset.path: {problem}; point it at a CSV file")
        reader = csv.reader(io.StringIO(text, newline=""))
        rows = []
        for row in reader:
            if any(v.strip() for v in row):
                rows.append((reader.line_num, row))
                if len(rows) > MAX_SAMPLES + 1:  # and the header
                    problem = f"more than {MAX_SAMPLES} data rows, over the limit"
                    raise DataError(f"{name}: dataset.path: {problem}; use a sample of the data")
    except FileNotFoundError:
        fix = "check dataset.path (it is relative to the config file)"
        raise DataError(f"{name}: dataset.path: file not found; {fix}") from None
    except FileProblem as e:
        raise DataError(f"{name}: dataset.path: {e}") from None
    except UnicodeDecodeError as e:
        line = e.object.count(b"\n", 0, e.start) + 1
        problem = f"not UTF-8 text (byte 0x{e.object[e.start]:02x} on line {line})"
        raise DataError(f"{name}: dataset.path: {problem}; save it as UTF-8") from None
    except csv.Error as e:
        problem = f"cannot read the file ({clip(str(e), 80)})"
        raise DataError(f"{name}: dataset.path: {problem}; fix the file") from None
    if not rows:
        raise DataError(f"{name}: the file is empty; write a header row and data rows")
    return rows


def _number(text: str, file: str, row: int, col: str) -> float:
    try:
        v = float(text)
    except ValueError:
        v = math.nan
    if not math.isfinite(v):
        fix = "fix the value or leave the column out of dataset.features"
        raise DataError(
            f"{file}: row {row}, column {quote(col)}: {quote(text.strip())} is not a number; {fix}"
        )
    return v


def _label_order(label: str) -> tuple:
    """Numeric labels in numeric order ('2' before '10'), then text labels alphabetically."""
    try:
        v = float(label)
    except ValueError:
        v = math.nan
    return (0, v, label) if math.isfinite(v) else (1, 0.0, label)


def _shown(path: Path) -> str:
    """The path as the user would type it: relative to the working directory when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError, RuntimeError):  # RuntimeError: a symlink loop (Python < 3.13)
        return str(path)
