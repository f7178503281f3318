"""A scalar that remembers how it was computed, and reverse-mode autodiff over such scalars.

Each operation stores, beside its result, the local derivative of the result with respect to
each child (`_local`), instead of a backward closure: the graph then has no reference cycles, so
it is freed by reference counting alone, and `backward()` is one flat loop of
`child.grad += local * out.grad` in reverse topological order (no recursion).

Numerics:
- `tanh` and `sigmoid` are computed in overflow-free forms (`tanh(±1000) == ±1`).
- `exp` of a too-large number gives `inf` (as IEEE floats do), with an `inf` derivative, so a
  diverging training run shows up as an infinite loss rather than as an exception; so does a
  power whose result overflows (`x ** 2` for huge `x`, as `x * x` already does).
- `log` of a non-positive number and division by zero raise `ValueError` / `ZeroDivisionError`
  naming the operation and the operand.
- A zero gradient flowing into a node contributes nothing, even through an infinite local
  derivative (no `0 * inf = nan`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from operator import mul

from engine.activations import ACTIVATIONS, sigmoid

Number = int | float
__all__ = ["Number", "Value", "fsum", "linear", "sigmoid", "vsum"]


def fsum(xs: Iterable[float]) -> float:
    """math.fsum (correctly rounded, so independent of order), but overflow gives inf and
    inf - inf gives nan, as plain float addition does, instead of raising."""
    xs = list(xs)
    try:
        return math.fsum(xs)
    except (OverflowError, ValueError):
        return sum(xs, 0.0)


def _exp(x: float) -> float:
    try:
        return math.exp(x)
    except OverflowError:
        return math.inf


def _pow(a: float, p: float) -> float:
    try:
        return a**p
    except OverflowError:
        return -math.inf if a < 0 and p % 2 == 1 else math.inf


class Value:
    """A scalar with a gradient; arithmetic on Values builds the expression graph."""

    __slots__ = ("data", "grad", "_prev", "_local", "_op", "label")

    def __init__(
        self,
        data: Number,
        _children: tuple[Value, ...] = (),
        _op: str = "",
        label: str = "",
        _local: tuple[float, ...] | Callable[[float], None] = (),
    ):
        self.data = data
        self.grad = 0.0
        self._prev = _children
        self._local = _local
        self._op = _op
        self.label = label

    # -- arithmetic: each result carries d(result)/d(child) for its children, in order --------

    def __add__(self, other: Value | Number) -> Value:
        other = other if isinstance(other, Value) else Value(other)
        return Value(self.data + other.data, (self, other), "+", _local=(1.0, 1.0))

    def __mul__(self, other: Value | Number) -> Value:
        other = other if isinstance(other, Value) else Value(other)
        return Value(self.data * other.data, (self, other), "*", _local=(other.data, self.data))

    def __sub__(self, other: Value | Number) -> Value:
        other = other if isinstance(other, Value) else Value(other)
        return Value(self.data - other.data, (self, other), "-", _local=(1.0, -1.0))

    def __truediv__(self, other: Value | Number) -> Value:
        other = other if isinstance(other, Value) else Value(other)
        b = other.data
        if b == 0:
            raise ZeroDivisionError(f"Value division: divisor is zero ({self.data!r} / {b!r})")
        out = self.data / b  # -out / b, not -a / (b * b): b * b underflows to 0 for tiny b
        return Value(out, (self, other), "/", _local=(1.0 / b, -out / b))

    def __pow__(self, other: Value | Number) -> Value:
        a = self.data
        if isinstance(other, Value):
            p = other.data
            if a <= 0:
                raise ValueError(f"Value power: a Value exponent needs a positive base, got {a!r}")
            out = _pow(a, p)
            return Value(out, (self, other), "**", _local=(p * _pow(a, p - 1), out * math.log(a)))
        if not isinstance(other, (int, float)):
            return NotImplemented
        if a == 0 and other < 0:
            raise ZeroDivisionError(f"Value power: zero to a negative power ({a!r} ** {other!r})")
        if a < 0 and not float(other).is_integer():
            raise ValueError(f"Value power: negative base, fractional power ({a!r} ** {other!r})")
        # at a == 0: d(x**0)/dx = 0, and d(x**p)/dx = inf for 0 < p < 1 (Python would raise)
        d = 0.0 if other == 0 else math.inf if a == 0 and other < 1 else other * _pow(a, other - 1)
        return Value(_pow(a, other), (self,), f"**{other}", _local=(d,))

    def __rpow__(self, other: Number) -> Value:
        return Value(other) ** self

    def __neg__(self) -> Value:
        return Value(-self.data, (self,), "neg", _local=(-1.0,))

    def __radd__(self, other: Number) -> Value:
        return Value(other) + self

    def __rsub__(self, other: Number) -> Value:
        return Value(other) - self

    def __rmul__(self, other: Number) -> Value:
        return Value(other) * self

    def __rtruediv__(self, other: Number) -> Value:
        return Value(other) / self

    # -- elementwise functions -----------------------------------------------------------------

    def activate(self, name: str) -> Value:
        """a = f(self) for the activation `name` of `engine.activations`; da/dself = f'(a)."""
        act = ACTIVATIONS[name]
        a = act.f(self.data)
        return Value(a, (self,), act.op, _local=(act.df(a),))

    def relu(self) -> Value:
        return self.activate("relu")

    def tanh(self) -> Value:
        return self.activate("tanh")

    def sigmoid(self) -> Value:
        return self.activate("sigmoid")

    def exp(self) -> Value:
        e = _exp(self.data)
        return Value(e, (self,), "exp", _local=(e,))

    def log(self) -> Value:
        x = self.data
        if x <= 0:
            raise ValueError(f"Value.log: operand must be positive, got {x!r}")
        return Value(math.log(x), (self,), "log", _local=(1.0 / x,))

    # -- autodiff ------------------------------------------------------------------------------

    def backward(self) -> None:
        """Set `grad` of every value this one depends on to d(self)/d(value).

        Leaves accumulate (call `zero_grad` between steps); interior nodes are reset first, so
        calling `backward()` twice on one graph doubles the leaves' gradients and nothing else.
        """
        topo = self.topological_order()
        for v in topo:
            if v._prev:
                v.grad = 0.0
        self.grad = 1.0
        for v in reversed(topo):
            local = v._local
            if local.__class__ is tuple:
                g = v.grad
                if g:
                    for c, d in zip(v._prev, local):  # noqa: B905 (hot loop; equal lengths)
                        c.grad += d * g
            else:
                local(v.grad)

    def topological_order(self) -> list[Value]:
        """Every value reachable from this one, children before parents; iterative and in a
        fixed order (children in the order they were given), so it is the same in every process."""
        topo: list[Value] = []
        seen = {self}
        # each frame is a node and the iterator over its children still to visit
        stack: list[tuple[Value, Iterator[Value]]] = [(self, iter(self._prev))]
        while stack:
            v, children = stack[-1]
            for c in children:
                if c not in seen:
                    seen.add(c)
                    if c._prev:
                        stack.append((c, iter(c._prev)))
                        break
                    topo.append(c)  # a leaf: no frame needed
            else:
                stack.pop()
                topo.append(v)
        return topo

    def __repr__(self) -> str:
        return f"Value(data={self.data!r}, grad={self.grad!r})"


# -- fused n-ary nodes: one node where the unfused graph would have a chain of binary ones -----


def vsum(values: Iterable[Value]) -> Value:
    """Sum of many Values as one node (d/dv_i = 1)."""
    vs = tuple(values)
    return Value(fsum(v.data for v in vs), vs, "sum", _local=(1.0,) * len(vs))


def linear(w: Sequence[Value], x: Sequence[Value | Number], b: Value | None = None) -> Value:
    """sum_i w_i * x_i (+ b) as one node: d/dw_i = x_i, d/dx_i = w_i, d/db = 1.

    Inputs that are plain numbers are constants: they get no gradient and no node.
    """
    if len(w) != len(x):
        raise ValueError(f"linear: {len(w)} weights but {len(x)} inputs")
    wd = [wi.data for wi in w]
    xd = [xi.data if isinstance(xi, Value) else xi for xi in x]
    out = sum(map(mul, wd, xd), 0.0)
    children: list[Value] = list(w)
    local: list[float] = xd[:]
    for xi, wi in zip(x, wd, strict=True):
        if isinstance(xi, Value):
            children.append(xi)
            local.append(wi)
    if b is not None:
        out += b.data
        children.append(b)
        local.append(1.0)
    return Value(out, tuple(children), "linear", _local=tuple(local))
