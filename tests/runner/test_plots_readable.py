"""Plots a person would show: big enough, labelled, classes named and told apart."""

from __future__ import annotations

import io
import math

from matplotlib.collections import PathCollection
from PIL import Image

from runner.commands.sweep_plots import _figure, metric_vs_params
from runner.training import plots


def _size(png: bytes) -> tuple[int, int]:
    return Image.open(io.BytesIO(png)).size


def _right_of_zero(gx, gy):
    return [[int(x > 0) for x in gx] for _ in gy]


X = [(-1.0, -1.0), (-1.0, 1.0), (1.0, -1.0), (1.0, 1.0)]
Y = [0, 0, 1, 1]
X_TEST = [(-0.5, 0.0), (0.5, 0.5)]
Y_TEST = [0, 1]


def test_decision_boundary_is_wide_and_its_legend_names_the_classes():
    png = plots.decision_boundary(
        _right_of_zero, X, Y, class_names=["robin", "sparrow"], X_test=X_TEST, y_test=Y_TEST
    )
    assert _size(png)[0] >= 600
    fig = plots._decision_boundary_figure(
        _right_of_zero, X, Y, class_names=["robin", "sparrow"], X_test=X_TEST, y_test=Y_TEST
    )
    (legend,) = fig.legends
    labels = [t.get_text() for t in legend.get_texts()]
    assert labels == ["robin", "sparrow", "training point", "test point"]


def test_numbered_classes_read_as_class_n_and_train_only_has_no_test_entry():
    fig = plots._decision_boundary_figure(_right_of_zero, X, Y, class_names=["0", "1"])
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["class 0", "class 1", "training point"]
    unnamed = plots._decision_boundary_figure(lambda gx, gy: [[2] * len(gx) for _ in gy], X, Y)
    assert [t.get_text() for t in unnamed.legends[0].get_texts()][:3] == [
        "class 0",
        "class 1",
        "class 2",  # predicted somewhere, though no point has it
    ]


def test_decision_boundary_axes_are_the_feature_names():
    fig = plots._decision_boundary_figure(_right_of_zero, X, Y, names=("wingspan_cm", "mass_g"))
    ax = fig.axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("wingspan_cm", "mass_g")


def test_classes_get_distinct_bright_colours_and_test_points_are_hollow():
    fig = plots._decision_boundary_figure(_right_of_zero, X, Y, X_test=X_TEST, y_test=Y_TEST)
    ax = fig.axes[0]
    points = [c for c in ax.collections if type(c) is PathCollection]  # the scatters
    filled = [c for c in points if c.get_facecolors().size]
    hollow = [c for c in points if not c.get_facecolors().size]
    assert sorted(map(tuple, (p for c in filled for p in c.get_offsets()))) == sorted(X)
    assert sorted(map(tuple, (p for c in hollow for p in c.get_offsets()))) == sorted(X_TEST)
    colours = [tuple(c.get_facecolors()[0][:3]) for c in filled]
    assert len(set(colours)) == 2
    assert all(max(rgb) > 0.5 for rgb in colours), colours  # no near-black class


def test_a_fine_grid_by_default():
    calls = []

    def predict(gx, gy):
        calls.append((len(gx), len(gy)))
        return _right_of_zero(gx, gy)

    plots.decision_boundary(predict, X, Y)
    assert calls == [(200, 200)]


def _cells(fig) -> list[int]:
    return [int(t.get_text()) for t in fig.axes[0].texts]


def test_confusion_matrix_cells_count_every_sample():
    y_true = [0, 0, 1, 1, 2, 2, 2]
    y_pred = [0, 1, 1, 1, 2, 0, 2]
    fig = plots._confusion_figure(y_true, y_pred, ["a", "b", "c"])
    assert sum(_cells(fig)) == len(y_true)
    assert _cells(fig) == [1, 1, 0, 0, 2, 0, 1, 0, 2]  # row = true class, column = predicted
    ax = fig.axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("predicted class", "true class")
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c"]
    assert "7 samples" in ax.get_title()


def test_confusion_matrix_of_ten_classes_is_wide_with_a_count_in_every_cell():
    y_true = [i % 10 for i in range(500)]
    y_pred = [(i * 7) % 10 for i in range(500)]
    names = [str(c) for c in range(10)]
    assert _size(plots.confusion_matrix(y_true, y_pred, names, title="test split"))[0] >= 600
    fig = plots._confusion_figure(y_true, y_pred, names)
    assert len(_cells(fig)) == 100 and sum(_cells(fig)) == 500


def _curves():
    points = [("train_loss", 1.0 / (s + 1), s) for s in range(20)]
    points += [("train_accuracy", s / 20, s) for s in range(20)]
    points += [("test_loss", 1.0 / (s + 1), s) for s in range(4, 20, 5)]
    return points + [("test_accuracy", s / 25, s) for s in range(4, 20, 5)]


def test_loss_curves_are_wide():
    assert _size(plots.loss_curves(_curves()))[0] >= 600


def test_final_gradient_titles_are_plain_english():
    grads = {f"layers.0.neurons.{j}.w.0": 10.0**-j for j in range(5)}
    grads |= {"layers.1.neurons.0.b": 0.0, "layers.1.neurons.0.w.0": 0.0}
    fig = plots._gradients_figure(grads)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0].strip() == "final gradient norm per layer"
    assert "per layer" in titles[1] and "2 of 7 exactly zero" in titles[1]
    assert not any("0 exactly zero" in t for t in titles)
    no_zeros = plots._gradients_figure({"layers.0.neurons.0.b": 1.0})
    assert "none exactly zero" in no_zeros.axes[1].get_title()
    assert "1 not finite" in plots._gradients_figure({"b": math.nan}).axes[1].get_title()


def test_the_gradient_histogram_is_split_by_layer():
    grads = {"layers.0.neurons.0.w.0": 1e-3, "layers.1.neurons.0.w.0": 1e-2}
    legend = plots._gradients_figure(grads).axes[1].get_legend()
    assert sorted(t.get_text() for t in legend.get_texts()) == ["layer 0", "layer 1"]


def _points(values):
    return [(v, 0.5 + 0.1 * i) for i, v in enumerate(values)]


def test_sweep_plot_is_logarithmic_past_a_decade():
    def scale(values):
        return _figure("training.lr", _points(values), "loss").axes[0].get_xscale()

    assert scale([0.05, 0.1, 0.2, 0.5, 1.0]) == "log"
    assert scale([0.1, 0.5, 1.0]) == "linear"
    assert scale([-1.0, 5.0, 100.0]) == "linear"  # not all positive


def test_sweep_plot_ticks_the_values_tried_and_is_wide(tmp_path):
    ax = _figure("training.lr", _points([0.05, 0.1, 0.2, 0.5, 1.0]), "loss").axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0.05", "0.1", "0.2", "0.5", "1"]
    (png,) = metric_vs_params([({"training.lr": 0.1}, 0.5)], "loss", tmp_path)
    assert _size(png.read_bytes())[0] >= 600
