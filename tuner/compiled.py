"""The one backend-specific call of the population trainer: compile a pure ``keras.ops`` program.

``tuner.population`` writes a whole epoch of a stack of heads (forward, backward, optimizer
steps, validation) as a pure function of tensors in ``keras.ops``, so the same code runs under
TensorFlow and JAX. Keras has no public way to compile such a function, so this module does it
with each backend's own compiler: ``jax.jit`` (the state's buffers donated, so an epoch updates
them in place) or ``tf.function(jit_compile=True)`` (XLA, which fuses the optimizer's
element-wise updates into one pass over the weights). Any other backend has no batched trials.
"""

from __future__ import annotations

from collections.abc import Callable

import keras

from training.errors import BackendError

BACKENDS = ("jax", "tensorflow")
"""The backends a population can be compiled for."""


def can_compile() -> bool:
    return keras.backend.backend() in BACKENDS


def compile_program(fn: Callable, donate: tuple[int, ...] = ()) -> Callable:
    """``fn`` compiled once per input shape; ``donate``: positional arguments whose buffers the
    program may reuse for its outputs (JAX; TensorFlow ignores it)."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return jax.jit(fn, donate_argnums=donate)
    if backend == "tensorflow":
        import tensorflow as tf

        # The program's Python loops (over sections) are static: no AutoGraph, which would
        # spend seconds converting Keras' own functions while tracing.
        return tf.function(fn, jit_compile=True, autograph=False)
    raise BackendError(
        f"Batched head trials compile with {' or '.join(BACKENDS)}; this is {backend}."
    )
