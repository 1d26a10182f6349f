"""Batches of cached uint8 images for ``model.fit``, on any Keras backend (no tf.data).

A batch is a fancy-indexed slice of the memmap: once the file is in the page cache it costs one
memory copy, the same as slicing an in-memory array. Indices are sorted inside a batch so reads
stay sequential on disk (the order of samples within a training batch does not matter to SGD);
unshuffled batches keep the given order, so predictions line up with the rows asked for.

Under data-parallel training every batch must split evenly over the devices, so a short last
batch is padded. Shuffled (training) batches take real images from the start of the epoch's order,
a few seen twice an epoch, as a full batch would be drawn (zero-weight copies would still enter
BatchNorm's batch statistics). Evaluation batches repeat a row at sample weight 0 (no metric
changes) and :meth:`ImageBatches.trim` drops their predictions.
"""

from __future__ import annotations

import math

import keras
import numpy as np


class ImageBatches(keras.utils.PyDataset):
    """``(images, labels)`` batches over chosen rows of an image array, reshuffled every epoch."""

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        indices: np.ndarray | None = None,
        batch_size: int = 32,
        shuffle: bool = False,
        seed: int = 0,
        sample_weights: np.ndarray | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.images = images
        self.labels = np.asarray(labels)
        self.indices = np.arange(len(labels)) if indices is None else np.asarray(indices)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.sample_weights = sample_weights
        self._rng = np.random.default_rng(seed)
        self._order = self._next_order()
        self.multiple = batch_multiple()

    def _next_order(self) -> np.ndarray:
        if self.shuffle:
            return self._rng.permutation(self.indices)
        return self.indices

    def __len__(self) -> int:
        return math.ceil(len(self.indices) / self.batch_size)

    def __getitem__(self, index: int):
        rows = self._order[index * self.batch_size : (index + 1) * self.batch_size]
        if self.shuffle:
            rows = np.sort(rows)  # sequential reads; callers of unshuffled batches keep order
        weights = None
        if self.sample_weights is not None or self.multiple > 1:
            weights = self._weights(rows)  # under data parallelism: the same structure each step
        short = -len(rows) % self.multiple
        if short and self.shuffle:
            extra = self._order[:short]
            weights = np.concatenate([weights, self._weights(extra)])
            rows = np.concatenate([rows, extra])
        elif short:
            weights = np.concatenate([weights, np.zeros(short, np.float32)])
            rows = np.concatenate([rows, np.repeat(rows[:1], short)])
        x = np.asarray(self.images[rows])
        y = self.labels[rows]
        return (x, y) if weights is None else (x, y, weights)

    def _weights(self, rows: np.ndarray) -> np.ndarray:
        if self.sample_weights is None:
            return np.ones(len(rows), np.float32)
        return self.sample_weights[self.labels[rows]].astype(np.float32)

    def trim(self, outputs: np.ndarray) -> np.ndarray:
        """Predictions of exactly the rows asked for (padding rows dropped)."""
        return np.asarray(outputs)[: len(self.indices)]

    def on_epoch_end(self) -> None:
        self._order = self._next_order()


def batch_multiple() -> int:
    """How many ways the current distribution splits a batch (1 outside :func:`data_parallel`)."""
    dist = keras.distribution.distribution()
    if dist is None:
        return 1
    mesh = dist.device_mesh
    axis = mesh.axis_names.index(dist.batch_dim_name)
    return int(mesh.shape[axis])
