"""Backbone blocks: the units phase 2 freezes and unfreezes, from the top down.

A block is a run of consecutive layers ending (or, for some families, starting) at a layer whose
name matches the family's ``block_pattern`` in the registry; BatchNorm stays frozen unless asked,
as the keras-io fine-tuning guide says for pretrained weights.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import keras

from training.errors import ConfigError

if TYPE_CHECKING:
    from training.model.backbones import BackboneSpec


@dataclass(frozen=True)
class Block:
    """One unit of fine-tuning: consecutive layers that are frozen or unfrozen together."""

    name: str
    layers: list[keras.layers.Layer]

    def count_params(self) -> int:
        """Parameters (trainable or not) held by the block's layers."""
        return sum(layer.count_params() for layer in self.layers if layer.weights)


def _leaf_layers(layer: keras.layers.Layer) -> list[keras.layers.Layer]:
    """The layer itself, or the layers inside a nested model (ConvNeXt's stem is Sequential)."""
    if isinstance(layer, keras.Model):
        return [leaf for sub in layer.layers for leaf in _leaf_layers(sub)]
    return [layer]


def _split(layers: list[keras.layers.Layer], pattern: str, marks: str) -> list[Block]:
    rx = re.compile(pattern)
    blocks: list[Block] = []
    current: list[keras.layers.Layer] = []

    def key_of(layer: keras.layers.Layer) -> str | None:
        match = rx.search(layer.name)
        if match is None:
            return None
        return next((g for g in match.groups() if g), layer.name)

    if marks == "first":
        name = "stem"
        for layer in layers:
            key = key_of(layer)
            if key is not None and key != name:
                if current:
                    blocks.append(Block(name, current))
                name, current = key, []
            current.append(layer)
        if current:
            blocks.append(Block(name, current))
    else:
        for layer in layers:
            current.append(layer)
            key = key_of(layer)
            if key is None:
                continue
            if blocks and blocks[-1].name == key:  # a later boundary of the same block
                blocks[-1].layers.extend(current)
            else:
                blocks.append(Block(key, current))
            current = []
        if current and blocks:  # the top (final BN, conv, pooling) joins the last block
            blocks[-1].layers.extend(current)
        elif current:
            blocks.append(Block("all", current))
    # A block without weights (an input layer alone) cannot be unfrozen: merge it forward.
    merged: list[Block] = []
    pending: list[keras.layers.Layer] = []
    for block in blocks:
        if not any(layer.weights for layer in block.layers):
            pending.extend(block.layers)
            continue
        merged.append(Block(block.name, pending + block.layers))
        pending = []
    if pending and merged:
        merged[-1].layers.extend(pending)
    return merged


def unfreezable_blocks(backbone: keras.Model, spec: BackboneSpec) -> list[Block]:
    """Split ``backbone.layers`` into the blocks fine-tuning unfreezes from the top down.

    A block ends at a layer matching ``spec.block_pattern`` (or starts there, for
    ``pattern_marks="first"``); layers after the last boundary (the top: final BN, conv,
    pooling) join the last block; blocks without weights merge into the next one.

    Raises:
        ConfigError: The model has no layer matching the pattern (not a ``spec`` model).
    """
    blocks = _split(list(backbone.layers), spec.block_pattern, spec.pattern_marks)
    if len(blocks) < 2:
        raise ConfigError(
            f"Model {backbone.name!r} has no layers matching the {spec.name} block pattern "
            f"{spec.block_pattern!r}. Expected a model built by get_backbone({spec.name!r}).build."
        )
    return blocks


def set_trainable_top_blocks(
    backbone: keras.Model,
    spec: BackboneSpec,
    n: int | Literal["all"],
    train_batchnorm: bool = False,
) -> int:
    """Freeze the backbone, then unfreeze its last ``n`` blocks (``"all"``: every block).

    BatchNormalization layers stay frozen unless ``train_batchnorm``: as the keras-io
    transfer-learning guide explains, updating their statistics on a small dataset destroys what
    the pretrained weights learned. Recompile the model afterwards for the change to take effect.

    Returns:
        The number of trainable parameters after the change.

    Raises:
        ConfigError: ``n`` is not ``"all"`` or an integer between 0 and the number of blocks.
    """
    blocks = unfreezable_blocks(backbone, spec)
    if n == "all":
        n = len(blocks)
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= len(blocks):
        raise ConfigError(
            f"Expected the number of blocks to unfreeze to be 'all' or 0..{len(blocks)} "
            f"({spec.name} has {len(blocks)} blocks). Received: {n!r}"
        )
    backbone.trainable = True
    for layer in backbone.layers:
        layer.trainable = False
    for block in blocks[len(blocks) - n :]:
        for layer in block.layers:
            layer.trainable = True  # a nested model passes this on to its own layers
            for leaf in _leaf_layers(layer):
                if isinstance(leaf, keras.layers.BatchNormalization) and not train_batchnorm:
                    leaf.trainable = False
    return sum(math.prod(w.shape) for w in backbone.trainable_weights)
