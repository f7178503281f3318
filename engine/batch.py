"""A whole MLP over a batch of rows as one fused node, with a hand-derived backward pass.

`forward_batch(model, X)` returns the same outputs as calling `model(x)` for each row, as Values
that plug into any loss; their backward pass is the chain rule written out per layer over plain
lists of floats, instead of one graph node per multiply-add. The gradients equal those of the
row-by-row graph up to floating-point rounding (tests hold them to 1e-12).

Layer l computes z = W a_prev + b and a = f(z) for every row. With g = d(loss)/dz of a layer
(for the last, linear layer: what the loss deposited on the outputs), the backward pass is

    dL/dW_jk = sum over rows of g_j a_prev_k      (each weight: its input times its output's g)
    dL/db_j  = sum over rows of g_j
    g_prev   = f'(z_prev) * (W^T g)               (f' read off the stored a_prev = f(z_prev))

The loss sees one output Value per row and class; each deposits its gradient into `gout` when
the loss's backward reaches it. The fused node is their common child, so the topological order
runs it after every output has deposited: only then is g of the last layer complete.
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import mul

from engine.activations import ACTIVATIONS
from engine.losses import DECISIONS
from engine.nn import MLP
from engine.value import Value


class _Collect:
    """Backward rule of one output node: deposit d(loss)/d(output) where the network finds it."""

    __slots__ = ("row", "k")

    def __init__(self, row: list[float], k: int):
        self.row, self.k = row, k

    def __call__(self, g: float) -> None:
        self.row[self.k] += g


class _Backprop:
    """Backward rule of the fused network node: runs once all outputs have deposited."""

    __slots__ = ("model", "acts", "gout")

    def __init__(self, model: MLP, acts: list[list[list[float]]], gout: list[list[float]]):
        self.model, self.acts, self.gout = model, acts, gout

    def __call__(self, _g: float) -> None:
        layers = self.model.layers
        g = [row[:] for row in self.gout]  # d loss / d z of the last layer, which is linear
        for row in self.gout:  # consumed: a second backward() deposits afresh
            row[:] = [0.0] * len(row)
        for li in range(len(layers) - 1, -1, -1):
            neurons, x = layers[li].neurons, self.acts[li]  # x: this layer's inputs, by row
            x_by_input = list(zip(*x, strict=True))
            for n, gn in zip(neurons, zip(*g, strict=True), strict=True):
                for w, xk in zip(n.w, x_by_input, strict=True):
                    w.grad += sum(map(mul, gn, xk))  # d loss / dw_jk = sum over rows g_j x_k
                n.b.grad += sum(gn)
            if not li:
                break
            # d loss / d z of the layer below: f'(z) * (W^T g), with f' read off a = f(z) = x
            wt = list(zip(*[[w.data for w in n.w] for n in neurons], strict=True))
            act = layers[li - 1].neurons[0].activation
            if act == "relu":  # skip the sums that the mask zeroes (often half of them)
                g = [
                    [sum(map(mul, wk, gr)) if a > 0 else 0.0 for wk, a in zip(wt, xr, strict=True)]
                    for gr, xr in zip(g, x, strict=True)
                ]
            else:
                df = ACTIVATIONS[act].df
                g = [
                    [df(a) * sum(map(mul, wk, gr)) for wk, a in zip(wt, xr, strict=True)]
                    for gr, xr in zip(g, x, strict=True)
                ]


def forward_batch(model: MLP, X: Sequence[Sequence[float]]) -> list[list[Value]]:
    """The model's outputs for every row of X: one list of output Values per row."""
    a = [[float(v) for v in row] for row in X]
    acts = [a]
    for layer in model.layers:
        f = ACTIVATIONS[layer.neurons[0].activation].f
        wb = [([w.data for w in n.w], n.b.data) for n in layer.neurons]
        a = [[f(sum(map(mul, w, x), 0.0) + b) for w, b in wb] for x in a]
        acts.append(a)
    gout = [[0.0] * len(row) for row in a]
    params = tuple(model.parameters())
    net = Value(
        0.0,
        params,
        "mlp",
        label=f"MLP{model.sizes} x {len(a)} rows",
        _local=_Backprop(model, acts, gout),
    )
    return [
        [Value(z, (net,), "out", _local=_Collect(gr, k)) for k, z in enumerate(row)]
        for row, gr in zip(a, gout, strict=True)
    ]


def classes(outputs: Sequence[Sequence[float]], decision: str | None = None) -> list[int]:
    """The class each row of model outputs stands for, by the loss's decision rule (a
    `engine.losses.DECISIONS` key); by default the largest of several outputs, or with one
    output class 1 when it is positive (as hinge, BCE and MSE on +-1 targets all read it)."""
    rule = DECISIONS[decision or ("argmax" if outputs and len(outputs[0]) > 1 else "sign")]
    return [rule(o) for o in outputs]


def predict(model: MLP, X: Sequence[Sequence[float]], decision: str | None = None) -> list[int]:
    """The predicted class of every row of X."""
    return classes([[v.data for v in row] for row in forward_batch(model, X)], decision)
