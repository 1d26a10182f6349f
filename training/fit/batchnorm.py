"""BatchNorm statistics that describe the data ("precise BN").

A backbone trained from random weights on a small set ends with moving averages that lag far
behind its weights: MobileNetV2's BatchNorm momentum is 0.999, so 60 steps move the averages
about 6% of the way. Training accuracy in ``fit`` (batch statistics) is then high while the same
images scored in inference mode sit at chance. The cure is to re-estimate every BatchNorm's
mean and variance as the plain average over batches of training images, with the weights fixed.
With pretrained weights the ImageNet statistics are kept instead: this is only for ``weights=none``.
"""

from __future__ import annotations

from collections.abc import Iterator

import keras
import numpy as np


def iter_layers(model: keras.layers.Layer) -> Iterator[keras.layers.Layer]:
    """Every layer inside ``model``, nested models included."""
    for layer in getattr(model, "layers", []):
        yield layer
        yield from iter_layers(layer)


def batchnorm_layers(model: keras.layers.Layer) -> list[keras.layers.BatchNormalization]:
    return [
        layer for layer in iter_layers(model) if isinstance(layer, keras.layers.BatchNormalization)
    ]


# Momentum for BatchNorm trained from scratch: the moving averages follow the weights within
# ~10 steps, so validation in inference mode during training means something. Keras
# applications ship 0.99 (ResNet) to 0.999 (MobileNetV2), made for million-image runs.
SCRATCH_MOMENTUM = 0.9


def speed_up_moving_averages(model: keras.layers.Layer) -> None:
    """Lower every BatchNorm's momentum to ``SCRATCH_MOMENTUM`` (only for random weights)."""
    for layer in batchnorm_layers(model):
        layer.momentum = min(layer.momentum, SCRATCH_MOMENTUM)


def recalibrate_batchnorm(
    backbone: keras.Model,
    preprocess: keras.layers.Layer,
    images: np.ndarray,
    rows: np.ndarray,
    batch_size: int = 32,
    max_batches: int = 100,
    seed: int = 0,
) -> int:
    """Set each BatchNorm's moving mean/variance to the average of its batch statistics.

    Runs the backbone in training mode (batch statistics) over up to ``max_batches`` batches of
    un-augmented training images; with momentum k/(k+1) at batch k the moving value becomes the
    exact running mean of the per-batch values. Weights are not changed. Returns the number of
    BatchNorm layers recalibrated (0 for backbones without BatchNorm, such as VGG).
    """
    layers = batchnorm_layers(backbone)
    if not layers or len(rows) == 0:
        return 0
    saved = [(layer.momentum, layer.trainable) for layer in layers]
    order = np.random.default_rng(seed).permutation(rows)
    batches = [np.sort(order[i : i + batch_size]) for i in range(0, len(order), batch_size)]
    try:
        for layer in layers:
            layer.trainable = True  # Keras runs a frozen BatchNorm in inference mode
        for k, batch in enumerate(batches[:max_batches]):
            for layer in layers:
                layer.momentum = k / (k + 1)
            backbone(preprocess(keras.ops.convert_to_tensor(images[batch])), training=True)
    finally:
        for layer, (momentum, trainable) in zip(layers, saved, strict=True):
            layer.momentum = momentum
            layer.trainable = trainable
    return len(layers)
