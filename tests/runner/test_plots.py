"""runner.training.plots: real PNGs, decoded and looked at."""

from __future__ import annotations

import io
import os
import subprocess
import sys

from PIL import Image

from runner.training import plots


def _image(png: bytes) -> Image.Image:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    return Image.open(io.BytesIO(png)).convert("RGB")


def _curves(steps: int, test_every: int = 0):
    points = []
    for s in range(steps):
        points += [
            ("train_loss", 1.0 / (s + 1), s),
            ("train_accuracy", s / steps, s),
            ("lr", 0.1, s),
        ]
        if test_every and (s + 1) % test_every == 0:
            points += [("test_loss", 1.2 / (s + 1), s), ("test_accuracy", s / steps - 0.1, s)]
    return points


def test_loss_curves_are_a_png_of_the_documented_size():
    img = _image(plots.loss_curves(_curves(30, test_every=10)))
    assert img.size == (8 * plots.DPI, int(3.2 * plots.DPI))


def test_loss_curves_draw_train_and_test_in_different_colours():
    with_test = _image(plots.loss_curves(_curves(30, test_every=5)))
    train_only = _image(plots.loss_curves(_curves(30)))
    assert _colours(with_test) > _colours(train_only)


def _colours(img: Image.Image) -> int:
    """Saturated colours in the image: the plotted lines, not the black and grey of the axes."""
    w, h = img.size
    pixels = (img.getpixel((x, y)) for x in range(w) for y in range(h))
    return len({p for p in pixels if max(p) - min(p) > 80})


def test_loss_curves_accept_no_points():
    assert _image(plots.loss_curves([])).size[0] == 8 * plots.DPI


def test_decision_boundary_paints_each_side_with_its_class():
    calls = []

    def predict(gx, gy):
        calls.append((len(gx), len(gy)))
        return [[int(x > 0) for x in gx] for _ in gy]

    X = [(-1.0, -1.0), (-1.0, 1.0), (1.0, -1.0), (1.0, 1.0)]
    img = _image(plots.decision_boundary(predict, X, [0, 0, 1, 1], n=40))
    assert calls == [(40, 40)]
    w, h = img.size
    left, right = img.getpixel((int(w * 0.3), h // 2)), img.getpixel((int(w * 0.85), h // 2))
    assert left[2] > left[0], left  # class 0: the blue end of coolwarm
    assert right[0] > right[2], right  # class 1: the red end


def test_final_gradients_cope_with_zero_and_non_finite_gradients():
    grads = {"layers.0.neurons.0.w.0": 0.0, "layers.0.neurons.0.b": float("nan")}
    grads |= {f"layers.1.neurons.{j}.w.0": 10.0**-j for j in range(6)}
    assert _image(plots.final_gradients(grads)).size == (8 * plots.DPI, int(3.2 * plots.DPI))
    assert _image(plots.final_gradients({"layers.0.neurons.0.b": 0.0}))


def test_plots_never_import_pyplot_or_need_a_display():
    code = (
        "import sys; from runner.training import plots; "
        "plots.loss_curves([('train_loss', 1.0, 0)]); "
        "plots.final_gradients({'layers.0.neurons.0.b': 1.0}); "
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot imported'"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "MPLBACKEND")}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
