"""Optimizers by name, one place for ``train``, ``check`` and the tuner's head trials, so a trial
and the run that repeats its hyperparameters step the same way."""

from __future__ import annotations

import keras


def make_optimizer(name: str, learning_rate: float) -> keras.optimizers.Optimizer:
    """Adam for most runs; AdamW and SGD with Nesterov momentum for the tuner to compare."""
    if name == "adamw":
        return keras.optimizers.AdamW(learning_rate, weight_decay=1e-4)
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate, momentum=0.9, nesterov=True)
    return keras.optimizers.Adam(learning_rate)
