"""`mgrun gradcheck` and `mgrun graph`: look inside the configured model without training it."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import typer

from engine.gradcheck import gradcheck
from engine.graph import draw_dot, graphviz_available, render, sample_graph
from runner.config import check_loss_fits, load_run_config
from runner.datasets import make_dataset
from runner.errors import ConfigError
from runner.training.trial import build_model, objective


def _model_and_data(path: Path, overrides: Sequence[str]):
    cfg = load_run_config(path, overrides)
    data = make_dataset(cfg.dataset, cfg.seed, cfg.base_dir)
    check_loss_fits(cfg, data)
    return cfg, build_model(cfg, data), data


def gradcheck_command(path: Path, overrides: Sequence[str], rows: int, tol: float) -> int:
    """Finite differences against autograd on the training objective over the first rows."""
    if rows < 1:
        raise ConfigError(f"--rows {rows}: must be at least 1; use e.g. --rows 8")
    if not (math.isfinite(tol) and tol > 0):
        raise ConfigError(f"--tol {tol}: must be a positive number; use e.g. --tol 1e-6")
    cfg, model, data = _model_and_data(path, overrides)
    X, y = data.X_train[:rows], data.y_train[:rows]
    report = gradcheck(
        lambda: objective(model, X, y, cfg.training.loss, cfg.training.l2)[0],
        model.named_parameters(),
    )
    ok = report.ok(tol)
    worst = report.rows[report.worst]
    typer.echo(
        f"{len(report.rows)} parameters on {len(X)} rows: worst relative error "
        f"{worst.rel_error:.3e} (absolute {worst.abs_error:.1e}) at {worst.name}: "
        f"{'ok' if ok else 'FAIL'} (each must be within relative {tol:g} or absolute 1e-8)"
    )
    return 0 if ok else 1


def graph_command(
    path: Path, overrides: Sequence[str], output: Path, neuron: str | None = None
) -> None:
    """Write the expression graph of the first training row through the model; with `neuron`
    ("LAYER.INDEX"), the picture of that one neuron instead (a .png, no Graphviz needed)."""
    if not output.parent.is_dir():
        raise ConfigError(
            f"-o {output}: the folder {output.parent} does not exist; create it or write elsewhere"
        )
    suffix = output.suffix.lower()
    if neuron is not None and suffix != ".png":
        raise ConfigError(f"{output}: --neuron draws a .png; name the output e.g. neuron.png")
    if suffix not in (".dot", ".svg", ".png"):
        raise ConfigError(f"{output}: unsupported graph format {suffix!r}; use .dot, .svg or .png")
    if suffix != ".dot" and neuron is None and not graphviz_available():
        raise ConfigError(
            f"{output}: writing {suffix} needs Graphviz's `dot` program; install it "
            "(apt-get install graphviz / brew install graphviz) or write a .dot file"
        )
    _, model, data = _model_and_data(path, overrides)
    if neuron is not None:
        from runner.training.graph_picture import (  # matplotlib: only when asked
            neuron_png,
            parse_neuron,
        )

        layer, index = parse_neuron(neuron, model)
        output.write_bytes(neuron_png(model, data.X_train[0], layer, index, "training row 0"))
        typer.echo(f"wrote {output} (neuron {layer}.{index})")
        return
    root = sample_graph(model, data.X_train[0], data.feature_names)
    source = draw_dot(root)
    if suffix == ".dot":
        output.write_text(source)
    else:
        render(source, output)
    typer.echo(f"wrote {output} ({len(root.topological_order())} values)")
