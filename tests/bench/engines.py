"""The engines under test, each a trainer of the same workload: `step(k)` is one training step
(returning the training accuracy before it), `reset()` restores the shared initial weights,
`weights()` reads them out per layer and neuron, `graph()` builds one step's loss graph."""

from __future__ import annotations

from engine.losses import hinge_loss, l2_penalty
from engine.optim import SGD, make_schedule
from engine.value import Value
from runner.training.trial import objective
from tests.bench.reference import Reference
from tests.bench.workload import Workload


class Micrograd:
    """micrograd 0.1.0 as its users run it: its own MLP, Value, backward and the demo's loss."""

    label = "micrograd 0.1.0"
    pause_gc = False  # default settings: the cyclic collector stays on

    def __init__(self, w: Workload):
        from micrograd import engine, nn  # the bench extra, never a runtime dependency

        self.w, self.Value = w, engine.Value
        self.X, self.y = w.data()
        self.model = nn.MLP(2, [*w.hidden, 1])  # its weights are overwritten by reset()
        self.reset()

    def reset(self) -> None:
        flat = [v for layer in self.w.initial_weights() for n in layer for v in n]
        params = self.model.parameters()  # layer by layer, neuron by neuron: w..., b, like ours
        assert len(params) == len(flat)
        for p, v in zip(params, flat, strict=True):
            p.data, p.grad = v, 0

    def weights(self) -> list[list[list[float]]]:
        return [
            [[p.data for p in n.parameters()] for n in layer.neurons] for layer in self.model.layers
        ]

    def loss(self):
        """The demo notebook's loss(), full batch."""
        inputs = [list(map(self.Value, xrow)) for xrow in self.X]
        scores = list(map(self.model, inputs))
        losses = [(1 + -yi * scorei).relu() for yi, scorei in zip(self.y, scores)]
        data_loss = sum(losses) * (1.0 / len(losses))
        reg_loss = self.w.alpha * sum(p * p for p in self.model.parameters())
        accuracy = [(yi > 0) == (scorei.data > 0) for yi, scorei in zip(self.y, scores)]
        return data_loss + reg_loss, sum(accuracy) / len(accuracy)

    def graph(self):
        return self.loss()[0]

    def step(self, k: int) -> float:
        total_loss, acc = self.loss()
        self.model.zero_grad()
        total_loss.backward()
        learning_rate = self.w.lr(k)
        for p in self.model.parameters():
            p.data -= learning_rate * p.grad
        return acc


class Batch:
    """mgrun's training path, as `runner.training.trial` runs it: forward_batch, losses, SGD."""

    label = "mgrun (forward_batch: the runner's path)"
    pause_gc = True  # runner.training.trial.gc_paused around the training loop

    def __init__(self, w: Workload):
        self.w = w
        self.X, y = w.data()
        self.y = y
        self.y01 = [(t + 1) // 2 for t in y]  # the runner's labels are 0..k-1
        self.model = w.model()
        self.params = self.model.parameters()
        self.schedule = make_schedule("linear", 1.0, w.steps)
        self.reset()

    def reset(self) -> None:
        flat = [v for layer in self.w.initial_weights() for n in layer for v in n]
        for p, v in zip(self.params, flat, strict=True):
            p.data, p.grad = v, 0.0
        self.opt = SGD(self.params, lr=1.0)

    def weights(self) -> list[list[list[float]]]:
        return [
            [[p.data for p in (*n.w, n.b)] for n in layer.neurons] for layer in self.model.layers
        ]

    def objective(self) -> tuple[Value, float]:
        return objective(self.model, self.X, self.y01, "hinge", self.w.alpha)

    def graph(self) -> Value:
        return self.objective()[0]

    def step(self, k: int) -> float:
        loss, acc = self.objective()
        self.model.zero_grad()
        loss.backward()
        self.opt.lr = self.schedule(k)
        self.opt.step()
        return acc


class Scalar(Batch):
    """The same, but the plain scalar graph: model(x) row by row, no batch fusing."""

    label = "mgrun scalar graph (model(x) per row)"

    def objective(self) -> tuple[Value, float]:
        scores = [self.model(x) for x in self.X]
        loss = hinge_loss(scores, self.y) + l2_penalty(self.params, self.w.alpha)
        return loss, sum((s.data > 0) == (t > 0) for s, t in zip(scores, self.y)) / len(self.y)


ENGINES = {"micrograd": Micrograd, "batch": Batch, "scalar": Scalar, "reference": Reference}


def count_nodes(root: object) -> int:
    """Values reachable from `root` through `_prev`, iteratively (micrograd's own sort recurses)."""
    seen, stack = {root}, [root]
    while stack:
        for c in stack.pop()._prev:
            if c not in seen:
                seen.add(c)
                stack.append(c)
    return len(seen)
