"""The floor: the demo's training step derived by hand over plain lists of floats, no graph.

Same maths as the engines: relu hidden layers, a linear output s, loss
mean_i max(0, 1 - y_i s_i) + alpha * sum(p^2), then p -= lr * dloss/dp.
"""

from __future__ import annotations

from operator import mul

from tests.bench.workload import Workload


class Reference:
    """Weights as W[layer][neuron] = [w_0, ..., w_nin-1] and B[layer][neuron]."""

    label = "hand-written pure Python"
    pause_gc = False  # written as a user would write it: nothing to collect, nothing to pause

    def __init__(self, w: Workload):
        self.w = w
        self.X, self.y = w.data()
        self.reset()

    def reset(self) -> None:
        init = self.w.initial_weights()
        self.W = [[n[:-1] for n in layer] for layer in init]
        self.B = [[n[-1] for n in layer] for layer in init]

    def weights(self) -> list[list[list[float]]]:
        return [
            [[*w, b] for w, b in zip(W, B, strict=True)]
            for W, B in zip(self.W, self.B, strict=True)
        ]

    def graph(self) -> None:
        return None

    def step(self, k: int) -> float:
        """One full-batch SGD step; returns the training accuracy before it, as the demo does."""
        W, B, y, n, last = self.W, self.B, self.y, len(self.y), len(self.W) - 1
        acts = [self.X]  # acts[l]: the inputs of layer l, one row per point
        for li in range(last + 1):
            z = [[sum(map(mul, w, x), 0.0) + b for w, b in zip(W[li], B[li])] for x in acts[-1]]
            acts.append(z if li == last else [[v if v > 0 else 0.0 for v in r] for r in z])
        scores = [r[0] for r in acts[-1]]
        # dloss/ds_i = -y_i / n where the margin 1 - y_i s_i is positive
        g = [[-t / n] if 1.0 - t * s > 0 else [0.0] for s, t in zip(scores, y)]
        lr, decay = self.w.lr(k), 2.0 * self.w.alpha
        for li in range(last, -1, -1):
            x = acts[li]
            if li:  # dloss/dz of the layer below, through its relu, before W changes
                wt = list(zip(*W[li]))
                g_below = [
                    [sum(map(mul, wk, gr)) if a > 0 else 0.0 for wk, a in zip(wt, xr)]
                    for gr, xr in zip(g, x)
                ]
            x_by_input = list(zip(*x))
            for j, gj in enumerate(zip(*g)):
                W[li][j] = [
                    wk - lr * (sum(map(mul, gj, xk)) + decay * wk)
                    for wk, xk in zip(W[li][j], x_by_input)
                ]
                B[li][j] -= lr * (sum(gj) + decay * B[li][j])
            if li:
                g = g_below
        return sum((s > 0) == (t > 0) for s, t in zip(scores, y)) / n
