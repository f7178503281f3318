"""mgrun's engine: a pure-Python scalar autograd engine and a small neural-net library on it."""

from engine.batch import classes, forward_batch, predict
from engine.gradcheck import GradcheckReport, gradcheck
from engine.graph import draw_dot, graphviz_available, render
from engine.losses import bce_with_logits, cross_entropy, hinge_loss, l2_penalty, mse_loss
from engine.nn import MLP, Layer, Module, Neuron
from engine.optim import SGD, Adam, make_schedule
from engine.value import Value, linear, vsum

__all__ = [
    "MLP",
    "SGD",
    "Adam",
    "GradcheckReport",
    "Layer",
    "Module",
    "Neuron",
    "Value",
    "bce_with_logits",
    "cross_entropy",
    "draw_dot",
    "classes",
    "forward_batch",
    "predict",
    "gradcheck",
    "graphviz_available",
    "hinge_loss",
    "l2_penalty",
    "linear",
    "make_schedule",
    "mse_loss",
    "render",
    "vsum",
]
