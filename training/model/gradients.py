"""The gradient of a scalar Keras computation, by the backend's own automatic differentiation.

Keras 3 has no backend-neutral ``gradient`` op: TensorFlow differentiates with a
``GradientTape``, JAX by transforming a function (``jax.grad``). This module is the one place
that knows either, so everything that needs a gradient (Grad-CAM) is written in ``keras.ops``
and runs on both. A backend without a branch here is a :class:`BackendError`, which callers
turn into a method that needs no gradient.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import numpy as np

from training.errors import BackendError

GRADIENT_BACKENDS = ("tensorflow", "jax")


def gradient(function: Callable[[Any], Any], x: np.ndarray) -> np.ndarray:
    """d ``function(x)`` / dx at ``x``, as float32 NumPy; ``function`` returns a scalar tensor
    and uses only ``keras.ops`` and Keras layers (called in inference mode)."""
    backend = keras.backend.backend()
    x = np.asarray(x, dtype="float32")
    if backend == "tensorflow":
        import tensorflow as tf

        value = tf.convert_to_tensor(x)
        with tf.GradientTape() as tape:
            tape.watch(value)
            y = function(value)
        return np.asarray(tape.gradient(y, value), dtype="float32")
    if backend == "jax":
        import jax

        return np.asarray(jax.grad(function)(jax.numpy.asarray(x)), dtype="float32")
    raise BackendError(
        f"Gradients are computed with {' or '.join(GRADIENT_BACKENDS)}; this process runs Keras "
        f"on {backend}. Run it with KERAS_BACKEND=tensorflow or KERAS_BACKEND=jax."
    )
