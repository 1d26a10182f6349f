"""Sparse cross-entropy with label smoothing (Keras' sparse loss has no smoothing argument).

Labels stay integers end to end (the cache and batches hold class indices), and the tuner can
still search label smoothing.
"""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="babysitter")
class SmoothedSparseCrossentropy(keras.losses.Loss):
    """``categorical_crossentropy(one_hot(y), p, label_smoothing)`` on integer labels."""

    def __init__(self, label_smoothing: float = 0.0, name: str = "smoothed_sparse_ce", **kwargs):
        super().__init__(name=name, **kwargs)
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true, y_pred):
        classes = ops.shape(y_pred)[-1]
        labels = ops.cast(ops.reshape(y_true, (-1,)), "int32")
        one_hot = ops.one_hot(labels, classes, dtype=y_pred.dtype)
        return keras.losses.categorical_crossentropy(
            one_hot, y_pred, label_smoothing=self.label_smoothing
        )

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


def classification_loss(
    label_smoothing: float, reduction: str = "sum_over_batch_size"
) -> keras.losses.Loss:
    """Keras' own sparse loss when there is no smoothing, ours when there is.

    ``reduction="mean_with_sample_weight"`` divides by the weights' sum, so zero-weight padding
    rows (data-parallel evaluation) do not dilute the mean.
    """
    if label_smoothing > 0:
        return SmoothedSparseCrossentropy(label_smoothing, reduction=reduction)
    return keras.losses.SparseCategoricalCrossentropy(reduction=reduction)
