"""Losses, each one fused node: the value is computed on floats, and d(loss)/d(input) for every
input is stored beside it, so a loss over n samples costs one node instead of ~5n.

All data losses are means over samples. Each docstring gives the loss and its derivative.
`LOSSES` says, for each name a config may use, how it meets the model: targets, output width and
the decision rule.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from engine.value import Value, fsum, sigmoid

LossFn = Callable[[Sequence[Sequence[Value]], Sequence], Value]


def _check(name: str, xs: Sequence[object], ys: Sequence[object]) -> int:
    n = len(xs)
    if n == 0 or n != len(ys):
        raise ValueError(f"{name}: need one target per prediction (n > 0), got {n} and {len(ys)}")
    return n


def hinge_loss(scores: Sequence[Value], y: Sequence[int]) -> Value:
    """mean_i max(0, 1 - y_i s_i), y_i in {-1, +1}; d/ds_i = -y_i / n where the margin is < 1."""
    n = _check("hinge_loss", scores, y)
    for i, yi in enumerate(y):
        if yi not in (-1, 1):
            raise ValueError(
                f"hinge_loss: labels must be -1 or +1, got {yi!r} at index {i}; map 0/1 to 2*y - 1"
            )
    margins = [1.0 - yi * s.data for s, yi in zip(scores, y, strict=True)]
    out = fsum(m for m in margins if m > 0) / n
    local = tuple(-yi / n if m > 0 else 0.0 for m, yi in zip(margins, y, strict=True))
    return Value(out, tuple(scores), "hinge", _local=local)


def bce_with_logits(logits: Sequence[Value], y: Sequence[float]) -> Value:
    """mean_i [log(1 + e^z_i) - y_i z_i], y_i in [0, 1]; d/dz_i = (sigmoid(z_i) - y_i) / n.

    log(1 + e^z) is written max(z, 0) + log1p(e^-|z|), which never overflows.
    """
    n = _check("bce_with_logits", logits, y)
    for i, yi in enumerate(y):
        if not 0 <= yi <= 1:
            raise ValueError(f"bce_with_logits: targets must be in [0, 1], got {yi!r} at index {i}")
    pairs = [(z.data, yi) for z, yi in zip(logits, y, strict=True)]
    out = fsum(max(z, 0.0) + math.log1p(math.exp(-abs(z))) - yi * z for z, yi in pairs) / n
    local = tuple((sigmoid(z) - yi) / n for z, yi in pairs)
    return Value(out, tuple(logits), "bce", _local=local)


def mse_loss(preds: Sequence[Value], targets: Sequence[float]) -> Value:
    """mean_i (p_i - t_i)^2; d/dp_i = 2 (p_i - t_i) / n."""
    n = _check("mse_loss", preds, targets)
    diffs = [p.data - t for p, t in zip(preds, targets, strict=True)]
    out = fsum(d * d for d in diffs) / n
    return Value(out, tuple(preds), "mse", _local=tuple(2.0 * d / n for d in diffs))


def cross_entropy(logits: Sequence[Sequence[Value]], y: Sequence[int]) -> Value:
    """mean_i [logsumexp(z_i) - z_i,y_i], y_i in 0..k-1; d/dz_ij = (softmax(z_i)_j - [j = y_i]) / n.

    The max logit is subtracted before exponentiating, so huge logits do not overflow.
    """
    n = _check("cross_entropy", logits, y)
    children: list[Value] = []
    local: list[float] = []
    terms: list[float] = []
    for i, (row, yi) in enumerate(zip(logits, y, strict=True)):
        k = len(row)
        if not (isinstance(yi, int) and 0 <= yi < k):
            raise ValueError(f"cross_entropy: label {yi!r} at index {i} is not in 0..{k - 1}")
        zs = [z.data for z in row]
        m = max(zs)
        es = [math.exp(z - m) for z in zs]
        total = fsum(es)
        terms.append(m + math.log(total) - zs[yi])
        children.extend(row)
        local.extend((e / total - (j == yi)) / n for j, e in enumerate(es))
    return Value(fsum(terms) / n, tuple(children), "cross_entropy", _local=tuple(local))


def l2_penalty(params: Sequence[Value], alpha: float) -> Value:
    """alpha * sum_i p_i^2; d/dp_i = 2 alpha p_i."""
    ps = tuple(params)
    out = alpha * fsum(p.data * p.data for p in ps)
    return Value(out, ps, "l2", _local=tuple(2.0 * alpha * p.data for p in ps))


def _on_scores(fn: Callable[[Sequence[Value], Sequence], Value]) -> LossFn:
    """A loss of one score per row, applied to the model's rows of outputs."""
    return lambda outs, targets: fn([o[0] for o in outs], targets)


def _sign(o: Sequence[float]) -> int:
    return int(o[0] > 0)


def _argmax(o: Sequence[float]) -> int:
    return max(range(len(o)), key=o.__getitem__)


# the class a row of outputs stands for, by rule name (kept in model.json as "decision")
DECISIONS: dict[str, Callable[[Sequence[float]], int]] = {"sign": _sign, "argmax": _argmax}


@dataclass(frozen=True)
class Loss:
    """How a training loss meets the model and the labels (class ids 0..k-1)."""

    fn: LossFn  # (outputs by row, targets) -> mean loss
    target: Callable[[int], float]  # class id -> the target this loss wants
    width: Callable[[int], int]  # k classes -> how many outputs the model needs
    decision: str  # a DECISIONS key: which class a row of outputs means

    @property
    def binary(self) -> bool:
        """One output, so exactly two classes."""
        return self.width(3) == 1


# Adding a loss is one entry here plus its tests; configs take their names from this table.
LOSSES: dict[str, Loss] = {
    "hinge": Loss(_on_scores(hinge_loss), lambda c: 2 * c - 1, lambda k: 1, "sign"),
    "bce": Loss(_on_scores(bce_with_logits), lambda c: c, lambda k: 1, "sign"),
    "mse": Loss(_on_scores(mse_loss), lambda c: 2 * c - 1, lambda k: 1, "sign"),
    "cross_entropy": Loss(cross_entropy, lambda c: c, lambda k: k, "argmax"),
}
