"""Dropout masks that depend only on (trial seed, step, row, column), never on who draws them.

A head trained alone (``tuner.heads``, Keras ``fit``) and the same head trained in a population
(``tuner.population``, all heads of a stage in one program) must drop the same units at the same
step, or their results could not be compared. Keras' random ops draw from a generator whose
stream depends on the shapes drawn and on the backend's own key handling, so the same mask
cannot be drawn one head at a time and for a stack of heads. A counter-based hash can: each
value is a pure function of its coordinates, computed with ``keras.ops`` integer arithmetic
(int32, wrapping multiplication) that TensorFlow and JAX evaluate identically.
"""

from __future__ import annotations

from keras import ops

_MUL_1 = 0x7FEB352D
_MUL_2 = 0x846CA68B - (1 << 32)  # as int32
_GOLDEN = 0x9E3779B9 - (1 << 32)


def _shift_right(x, bits: int):
    """Logical right shift of int32 values (the backends' shift on int32 is arithmetic)."""
    return ops.bitwise_and(ops.right_shift(x, bits), (1 << (32 - bits)) - 1)


def mix(x):
    """Chris Wellons' ``lowbias32`` integer hash on int32 tensors (wrapping arithmetic)."""
    x = ops.bitwise_xor(x, _shift_right(x, 16))
    x = ops.multiply(x, ops.cast(_MUL_1, "int32"))
    x = ops.bitwise_xor(x, _shift_right(x, 15))
    x = ops.multiply(x, ops.cast(_MUL_2, "int32"))
    return ops.bitwise_xor(x, _shift_right(x, 16))


def step_key(seed, step):
    """The key of one training step of one head: ``seed`` and ``step`` int32 tensors of any
    (broadcastable) shape."""
    seed = ops.cast(seed, "int32")
    step = ops.cast(step, "int32")
    return mix(ops.bitwise_xor(mix(seed), ops.multiply(step + 1, ops.cast(_GOLDEN, "int32"))))


def uniform(key, rows: int, cols: int):
    """Values in [0, 1) of shape ``key.shape + (rows, cols)``: element (r, c) under key k is
    ``mix(k xor (r·cols + c))``'s top 24 bits. A head's (rows, cols) block is the same whether
    its key comes alone or stacked with other heads' keys."""
    key = ops.cast(key, "int32")
    counter = ops.reshape(ops.arange(rows * cols, dtype="int32"), (rows, cols))
    key = ops.reshape(key, (*ops.shape(key), 1, 1))
    bits = _shift_right(mix(ops.bitwise_xor(counter, key)), 8)
    return ops.cast(bits, "float32") * (1.0 / (1 << 24))
