"""Batches of cached uint8 images for ``model.fit``, on any Keras backend (no tf.data).

A batch is a fancy-indexed slice of the memmap: once the file is in the page cache it costs one
memory copy, the same as slicing an in-memory array. Indices are sorted inside a batch so reads
stay sequential on disk (the order of samples within a training batch does not matter to SGD);
unshuffled batches keep the given order, so predictions line up with the rows asked for.
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
        x = np.asarray(self.images[rows])
        y = self.labels[rows]
        if self.sample_weights is not None:
            return x, y, self.sample_weights[y].astype(np.float32)
        return x, y

    def on_epoch_end(self) -> None:
        self._order = self._next_order()
