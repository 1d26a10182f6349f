"""The lecture's VGG table, computed from real Keras models."""

from __future__ import annotations

import json

import keras
import pytest

from training.model.architecture import (
    format_architecture,
    human_bytes,
    human_count,
    inspect_architecture,
    layer_rows,
)
from training.model.backbones import get_backbone

# The lecture's per-layer activation counts for VGG16 (INPUT, conv/pool rows, FC rows).
VGG16_LECTURE_ACTIVATIONS = (
    224 * 224 * 3
    + 2 * 224 * 224 * 64
    + 112 * 112 * 64
    + 2 * 112 * 112 * 128
    + 56 * 56 * 128
    + 3 * 56 * 56 * 256
    + 28 * 28 * 256
    + 3 * 28 * 28 * 512
    + 14 * 14 * 512
    + 3 * 14 * 14 * 512
    + 7 * 7 * 512
    + 4096
    + 4096
    + 1000
)


@pytest.fixture(autouse=True)
def _fresh_keras_session():
    keras.backend.clear_session()
    yield
    keras.backend.clear_session()


def _row(report, name):
    return next(r for r in report.rows if r.name == name)


def test_vgg16_conv_rows_match_the_lecture():
    report = inspect_architecture("VGG16", 224, include_top=False, pooling=None)
    assert _row(report, "input_layer").activations == 224 * 224 * 3
    conv1 = _row(report, "block1_conv1")
    assert conv1.output_shape == (224, 224, 64)
    assert conv1.activations == 224 * 224 * 64 and conv1.memory_bytes == 224 * 224 * 64 * 4
    assert conv1.params == (3 * 3 * 3) * 64 + 64
    assert conv1.flops == 2 * (3 * 3 * 3) * 64 * 224 * 224 + 224 * 224 * 64
    assert _row(report, "block3_conv2").params == (3 * 3 * 256) * 256 + 256
    assert _row(report, "block5_pool").output_shape == (7, 7, 512)
    assert report.total_params == 14_714_688
    assert report.total_activations == VGG16_LECTURE_ACTIVATIONS - 4096 - 4096 - 1000


def test_vgg16_with_top_matches_the_lecture():
    report = inspect_architecture("vgg16", include_top=True)
    assert report.image_size == 224
    assert report.total_params == 138_357_544
    assert _row(report, "fc1").params == 25088 * 4096 + 4096
    assert _row(report, "fc2").params == 4096 * 4096 + 4096
    assert _row(report, "predictions").params == 4096 * 1000 + 1000
    assert not _row(report, "flatten").counted  # a view of block5_pool, not new memory
    assert report.total_activations == VGG16_LECTURE_ACTIVATIONS == 15_237_608
    assert report.total_memory_bytes == 15_237_608 * 4  # ≈ 61 MB, not the slide's 93 MB
    assert any("24M" in note for note in report.notes)
    assert 30.9e9 < report.total_flops < 31.0e9  # 15.47 G multiply-adds
    text = format_architecture(report, batch_size=32)
    assert "138,357,544" in text and "15.2M values x 4 bytes = 61 MB" in text


def test_small_model_totals_are_the_sum_of_rows():
    report = inspect_architecture("MobileNetV2", 32)
    model = get_backbone("MobileNetV2").build(32, None)
    assert report.total_params == model.count_params()
    assert report.total_activations == sum(r.activations for r in report.rows if r.counted)
    assert report.total_flops == sum(r.flops for r in report.rows) > 0
    assert report.total_memory_bytes == 4 * report.total_activations
    assert 0 < report.trainable_params < report.total_params  # BN moving statistics
    json.dumps(report.to_dict())
    assert report.to_dict()["totals"]["params"] == model.count_params()


def test_nested_models_and_ops_are_flattened():
    report = inspect_architecture("ConvNeXtTiny", 32)
    model = get_backbone("ConvNeXtTiny").build(32, None)
    assert report.total_params == model.count_params()
    names = [r.name for r in report.rows]
    assert "convnext_tiny_stem/convnext_tiny_stem_conv" in names
    assert any(r.type == "Add" for r in report.rows)  # `x + y` ops, not layers


def test_flop_conventions_on_a_hand_made_model():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
    x = keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False, name="dw")(x)
    x = keras.layers.Conv2D(6, 1, groups=2, name="grouped")(x)
    x = keras.layers.SeparableConv2D(5, 3, name="sep")(x)  # valid: 6x6
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.MaxPooling2D(2, name="pool")(x)  # 3x3
    y = keras.layers.Activation("relu", name="relu")(x)
    x = keras.layers.Add(name="add")([x, y])
    x = keras.layers.Flatten(name="flat")(x)
    outputs = keras.layers.Dense(7, name="dense")(x)
    rows = {r.name: r for r in layer_rows(keras.Model(inputs, outputs))}

    assert rows["conv"].flops == 2 * 3 * 3 * 3 * 4 * 8 * 8 + 4 * 8 * 8
    assert rows["dw"].flops == 2 * 3 * 3 * 4 * 8 * 8
    assert rows["grouped"].flops == 2 * 1 * 1 * (4 // 2) * 6 * 8 * 8 + 6 * 8 * 8
    assert rows["sep"].flops == 2 * (3 * 3 * 6 * 6 * 6 + 6 * 5 * 6 * 6) + 5 * 6 * 6
    assert rows["bn"].flops == 2 * 6 * 6 * 5
    assert rows["pool"].flops == 4 * 3 * 3 * 5
    assert rows["relu"].flops == rows["add"].flops == 3 * 3 * 5
    assert rows["flat"].flops == 0 and not rows["flat"].counted
    assert rows["dense"].flops == 2 * 45 * 7 + 7
    assert rows["dense"].params == 45 * 7 + 7


def test_training_memory_arithmetic():
    report = inspect_architecture("MobileNetV2", 32, dtype_bytes=2)
    memory = report.training_memory(batch_size=8, optimizer_slots=2)
    assert memory["activations_bytes"] == report.total_activations * 8 * 2 * 2
    assert memory["params_bytes"] == report.total_params * 2
    assert memory["gradients_bytes"] == report.trainable_params * 2
    assert memory["optimizer_bytes"] == 2 * report.trainable_params * 2
    parts = ("activations_bytes", "params_bytes", "gradients_bytes", "optimizer_bytes")
    assert memory["total_bytes"] == sum(memory[k] for k in parts)
    frozen = report.training_memory(batch_size=8, trainable_params=0)
    assert frozen["gradients_bytes"] == frozen["optimizer_bytes"] == 0


def test_format_architecture_is_an_aligned_table():
    text = format_architecture(inspect_architecture("MobileNetV2", 32), batch_size=16)
    lines = text.splitlines()
    assert lines[0] == "MobileNetV2 at 32x32 (without top, 4 bytes/value)"
    assert lines[1].split() == [
        "layer",
        "type",
        "output",
        "activations",
        "memory",
        "params",
        "FLOPs",
    ]
    assert "Conv1  " in text and "[16x16x32]" in text
    assert "TOTAL params:" in text and "Training memory, batch 16:" in text


def test_human_units():
    assert human_count(3_211_264) == "3.21M"
    assert human_count(802_816) == "803K"
    assert human_count(999) == "999"
    assert human_bytes(15_237_608 * 4) == "61 MB"
    assert human_bytes(3.9e9) == "3.9 GB"
