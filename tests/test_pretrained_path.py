"""The default user path, end to end: pretrained weights from a file, default unfreezing.

Most users train with pretrained weights and the default ``--unfreeze`` (the top 2 blocks), yet
without the internet no test could take that path: ImageNet weights cannot be downloaded. A
backbone pretrained in seconds on the benchmark's procedural source task (``tests/pretrained.py``)
stands in for them, and the saved model is checked against the file it started from: what the
keras-io fine-tuning rules promise (frozen blocks untouched, BatchNorm statistics kept in every
block, the top blocks and the head trained) and that the accuracy ``train`` reports is the one
the saved file gets.
"""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

import training.model.layers  # noqa: F401  (registers the custom layers load_model needs)
from tests.imagegen import make_image_folder
from tests.pretrained import make_pretrained_weights, sidecar_path
from training.config import TrainConfig
from training.fit.prepare import prepare_for_config
from training.fit.two_phase import train
from training.model.backbones import get_backbone
from training.model.blocks import unfreezable_blocks
from training.model.classifier import build_head
from training.store import RunStore

pytestmark = pytest.mark.core

SIZE = 32


@pytest.fixture(scope="session")
def weights_file(tmp_path_factory):
    """MobileNetV2 at 32 px pretrained on the procedural source task (a few seconds)."""
    return make_pretrained_weights(tmp_path_factory.mktemp("pretrained"), "MobileNetV2", SIZE)


def _weights(layer: keras.layers.Layer) -> list[np.ndarray]:
    return [np.asarray(w) for w in layer.get_weights()]


def _same(a: keras.layers.Layer, b: keras.layers.Layer) -> bool:
    wa, wb = _weights(a), _weights(b)
    return len(wa) == len(wb) and all(np.array_equal(x, y) for x, y in zip(wa, wb, strict=True))


def _backbone_of(model: keras.Model, name: str) -> keras.Model:
    backbone = model.get_layer(name)
    assert isinstance(backbone, keras.Model)
    return backbone


def test_weights_file_loads_at_any_size_and_says_what_it_is(weights_file):
    meta = json.loads(sidecar_path(weights_file).read_text())
    assert meta["backbone"] == "MobileNetV2" and meta["image_size"] == SIZE
    assert meta["classes"] == len(meta["class_names"]) and 0 <= meta["source_accuracy"]["val"] <= 1
    spec = get_backbone("MobileNetV2")
    small, large = spec.build(SIZE, weights_file), spec.build(48, weights_file)
    for a, b in zip(small.layers, large.layers, strict=True):
        assert _same(a, b), a.name  # convolution weights do not depend on the image size
    # Pretrained, not Keras' initial values: BatchNorm holds statistics of real activations.
    bn = [layer for layer in small.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert bn and all(not np.allclose(layer.moving_mean, 0) for layer in bn)


def test_default_pretrained_path_keeps_what_it_must_and_trains_the_rest(tmp_path, weights_file):
    data = make_image_folder(tmp_path / "colours", {"red": 10, "green": 10, "blue": 10}, size=SIZE)
    config = TrainConfig(
        data=str(data),
        backbone="MobileNetV2",
        weights=str(weights_file),
        image_size=SIZE,
        batch_size=8,
        epochs_head=10,
        epochs_finetune=1,
        seed=1,
    )
    assert config.pretrained and config.unfreeze is None and config.resolved_unfreeze() == 2
    store = RunStore()
    result = train(config, store, verbose=0, echo=lambda m: None)
    assert store.get_run(result.run_id).status == "completed"
    assert result.summary["epochs"] == {"head": 10, "finetune": 1}

    spec = get_backbone("MobileNetV2")
    reference = spec.build(SIZE, weights_file)
    model = keras.saving.load_model(store.artifact(result.run_id, "model"))
    trained = _backbone_of(model, reference.name)
    blocks = unfreezable_blocks(trained, spec)
    top = {layer.name for block in blocks[-2:] for layer in block.layers}
    # Layer by layer; the input and pooling layers are auto-named, but they hold no weights.
    pairs = [
        (layer, ref)
        for layer, ref in zip(trained.layers, reference.layers, strict=True)
        if layer.weights
    ]
    assert pairs and all(layer.name == ref.name for layer, ref in pairs)

    changed_kernels = 0
    for layer, ref in pairs:
        if isinstance(layer, keras.layers.BatchNormalization):
            # Pretrained BatchNorm runs in inference mode and is frozen in both phases, inside
            # the unfrozen blocks too: statistics, scale and offset are the file's.
            assert _same(layer, ref), f"BatchNorm {layer.name} changed"
        elif layer.name not in top:
            assert _same(layer, ref), f"frozen layer {layer.name} changed"
        elif layer.get_weights():
            for got, want in zip(_weights(layer), _weights(ref), strict=True):
                assert not np.array_equal(got, want), f"unfrozen layer {layer.name} kept"
            changed_kernels += 1
    assert changed_kernels >= 6  # each MobileNetV2 block: expand, depthwise, project convs

    # The head trained: its weights left their seeded initial values (build_head is seeded).
    head = model.get_layer("head")
    fresh = build_head(int(reference.output.shape[-1]), 3, config.dropout, 0.0, 0, config.seed)
    logits, initial = head.get_layer("logits"), fresh.get_layer("logits")
    assert not np.allclose(logits.get_weights()[0], initial.get_weights()[0])
    assert np.abs(logits.get_weights()[1]).max() > 0

    # What ``train`` reported is what the saved file scores, in inference mode, on each split.
    _, _, prepared = prepare_for_config(config, store, progress=False)
    for split in ("train", "val"):
        rows = prepared.rows(split)
        images = np.asarray(prepared.cache.images[rows])
        probabilities = model.predict(images, batch_size=8, verbose=0)
        accuracy = float(np.mean(np.argmax(probabilities, -1) == prepared.cache.labels[rows]))
        assert accuracy == result.summary[split]["accuracy"], split
    assert result.summary["val"]["images"] == 6
    assert result.summary["train"]["accuracy"] > 0.5  # colour classes; chance is 1/3
