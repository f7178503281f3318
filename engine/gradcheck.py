"""Check autograd against central finite differences.

For each parameter p with autograd gradient a and numerical gradient
n = (f(p + eps) - f(p - eps)) / (2 eps), the error is

    rel = |a - n| / max(|a| + |n|, 1e-8)

which lies in [0, 1] (nan and inf gradients count as inf); a wrong rule gives something near 1.
The floor keeps an exact zero (a = n = 0, e.g. a dead ReLU) at 0 rather than 0 / 0.

n itself is only good to about 1e-16 |f| / eps in absolute terms (rounding in f, amplified by
1/eps): ~1e-10 for f ~ 1 and eps = 1e-6. So a correct gradient of 1e-6 can show rel ~ 1e-4.
`ok(tol, atol)` therefore passes a parameter when rel <= tol or |a - n| <= atol (as
numpy.allclose does). Finite differences also mislead at kinks (ReLU at exactly 0).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from engine.value import Value

FLOOR = 1e-8


@dataclass(frozen=True)
class GradcheckRow:
    """One parameter: its autograd and numerical gradients and their disagreement."""

    index: int
    name: str
    analytic: float
    numeric: float
    abs_error: float
    rel_error: float


@dataclass(frozen=True)
class GradcheckReport:
    """All rows, the worst relative error, and where it occurred."""

    rows: tuple[GradcheckRow, ...]
    eps: float

    @property
    def worst(self) -> int | None:
        """Index (into `params` and `rows`) of the parameter with the largest error."""
        return max(range(len(self.rows)), key=lambda i: self.rows[i].rel_error, default=None)

    @property
    def worst_name(self) -> str | None:
        return None if self.worst is None else self.rows[self.worst].name

    @property
    def max_rel_error(self) -> float:
        return 0.0 if self.worst is None else self.rows[self.worst].rel_error

    def ok(self, tol: float = 1e-6, atol: float = 1e-8) -> bool:
        """Whether every parameter has relative error <= `tol` or absolute error <= `atol`."""
        return all(r.rel_error <= tol or r.abs_error <= atol for r in self.rows)

    def __str__(self) -> str:
        head = f"gradcheck eps={self.eps:g}: max rel error {self.max_rel_error:.3e}"
        if self.worst is not None:
            head += f" at {self.worst_name}"
        rows = [
            f"  {r.name:<24} autograd {r.analytic: .10e}  numeric {r.numeric: .10e}  "
            f"rel {r.rel_error:.3e}"
            for r in self.rows
        ]
        return "\n".join([head, *rows])


def gradcheck(
    f: Callable[[], Value],
    params: Iterable[Value | tuple[str, Value]],
    eps: float = 1e-6,
) -> GradcheckReport:
    """Compare d f()/d p from `backward()` with central differences for every p in `params`.

    `params` holds Values, or (name, Value) pairs such as `model.named_parameters()`. `f` must
    rebuild its graph from the parameters' current data on every call. Every parameter's data and
    grad are left exactly as they were, even if `f` raises.
    """
    named = [
        p if isinstance(p, tuple) else (p.label or f"params[{i}]", p) for i, p in enumerate(params)
    ]
    saved = [(p, p.data, p.grad) for _, p in named]
    try:
        for _, p in named:
            p.grad = 0.0
        f().backward()
        analytic = [p.grad for _, p in named]
        rows = []
        for i, ((name, p), a) in enumerate(zip(named, analytic, strict=True)):
            x = p.data
            try:
                p.data = x + eps
                up = f().data
                p.data = x - eps
                down = f().data
            finally:
                p.data = x
            n = (up - down) / (2 * eps)
            err = abs(a - n)
            rel = err / max(abs(a) + abs(n), FLOOR) if math.isfinite(err) else math.inf
            rows.append(GradcheckRow(i, name, a, n, err, rel))
    finally:
        for p, data, grad in saved:
            p.data, p.grad = data, grad
    return GradcheckReport(tuple(rows), eps)
