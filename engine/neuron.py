"""One neuron on one input, unfused: the expression graph a learner would draw by hand.

`Neuron.__call__` computes act(w . x + b) as one fused `linear` node, which is fast for training
but hides the steps. `neuron_graph` rebuilds the same computation from fresh, labelled Values (a
product per input, their sum, plus the bias, the activation) and runs `backward()` on it, so each
node holds d(out)/d(node). The neuron's own parameters are only read: their data and grad stay.
"""

from __future__ import annotations

from collections.abc import Sequence

from engine.nn import MLP, Neuron
from engine.value import Value, vsum


def neuron_graph(neuron: Neuron, x: Sequence[float], prefix: str = "x") -> Value:
    """out = act(w1*x1 + ... + wk*xk + b) on new Values, after out.backward().

    Labels: x1.. (`prefix`1..), w1.., b, w1*x1.., "w·x" (the sum of the products), n (plus the
    bias) and out (the activation of n; for a "linear" neuron out is n itself)."""
    if len(x) != len(neuron.w):
        raise ValueError(f"neuron_graph: the neuron has {len(neuron.w)} weights, x has {len(x)}")
    products = []
    for i, (w, xi) in enumerate(zip(neuron.w, x), 1):
        p = Value(w.data, label=f"w{i}") * Value(float(xi), label=f"{prefix}{i}")
        p.label = f"w{i}*{prefix}{i}"
        products.append(p)
    dot = vsum(products)
    dot.label = "w·x"
    n = dot + Value(neuron.b.data, label="b")
    n.label = "n"
    out = n if neuron.activation == "linear" else n.activate(neuron.activation)
    out.label = "out"
    out.backward()
    return out


def layer_input(model: MLP, x: Sequence[float], layer: int) -> list[float]:
    """What layer `layer` of `model` reads when the model is given the row x: x itself for
    layer 0, else the previous layer's outputs (no backward, so no gradient changes)."""
    h = [float(v) for v in x]
    for lay in model.layers[:layer]:
        out = lay(h)
        h = [v.data for v in (out if isinstance(out, list) else [out])]
    return h
