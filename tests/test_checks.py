"""Sanity-gate checks on real backbone features of generated images, healthy and faulty."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from tests.imagegen import class_image
from training.babysit.checks import (
    initial_loss_check,
    overfit_check,
    regularization_check,
    tiny_subset,
)
from training.model.backbones import get_backbone
from training.model.classifier import build_classifier, build_head

pytestmark = pytest.mark.core
CLASSES = 3


@pytest.fixture(scope="module")
def features():
    """VGG16 (random weights, no BatchNorm) features of 3 colour classes × 30 images."""
    images = np.stack([np.array(class_image(c, s, 32)) for c in range(CLASSES) for s in range(30)])
    labels = np.repeat(np.arange(CLASSES), 30)
    clf = build_classifier(
        get_backbone("VGG16"), ["r", "g", "b"], 32, "none", augment=False, dropout=0.0
    )
    x = np.asarray(clf.features.predict(images, verbose=0), dtype="float32")
    return x, labels


def head(x, l2=0.0):
    return build_head(x.shape[1], CLASSES, dropout=0.0, l2=l2, head_units=0, seed=0)


def test_a_fresh_head_starts_at_ln_classes(features):
    x, y = features
    finding = initial_loss_check(head(x), x, y, CLASSES)
    assert finding.status == "ok"
    assert finding.measured == pytest.approx(np.log(CLASSES), rel=0.05)


def test_a_head_initialised_too_large_fails_the_initial_loss(features):
    x, y = features
    big = head(x)
    logits = big.get_layer("logits")
    logits.kernel.assign(np.random.default_rng(0).normal(0, 50, logits.kernel.shape))
    finding = initial_loss_check(big, x, y, CLASSES)
    assert finding.status == "fail"
    assert "initialised too large" in finding.advice


def test_l2_raises_the_loss_by_about_the_penalty(features):
    x, y = features
    finding = regularization_check(lambda l2: head(x, l2), x, y, CLASSES)
    assert finding.status == "ok"
    rise = finding.evidence["loss_with"] - finding.evidence["loss_without"]
    assert rise == pytest.approx(finding.evidence["expected_rise"], rel=0.05)


def test_a_regularizer_left_out_of_the_model_fails(features):
    x, y = features
    finding = regularization_check(lambda l2: head(x, 0.0), x, y, CLASSES)  # ignores l2
    assert finding.status == "fail"
    assert "not in the loss" in finding.advice


def test_tiny_subset_has_every_class():
    labels = np.array([0] * 50 + [1] * 3 + [2] * 50)
    subset = tiny_subset(labels, size=20)
    assert len(subset) == 20
    assert set(labels[subset]) == {0, 1, 2}


def test_a_healthy_head_memorises_twenty_images(features):
    x, y = features
    subset = tiny_subset(y)
    finding = overfit_check(head(x), x[subset], y[subset], CLASSES)
    assert finding.status == "ok", finding.measured
    assert finding.evidence["steps"] < 200


def separable(scale):
    """20 points of 3 classes, each near its own axis: a linear softmax memorises them, and the
    smaller ``scale``, the slower its loss falls (weak features)."""
    y = np.arange(20) % CLASSES
    noise = np.random.default_rng(0).normal(size=(20, CLASSES))
    return (scale * (np.eye(CLASSES)[y] + 0.3 * noise)).astype("float32"), y


def test_memorised_with_the_loss_still_falling_slowly_passes():
    x, y = separable(3.0)
    linear = keras.Sequential(
        [
            keras.Input((CLASSES,)),
            keras.layers.Dense(CLASSES, "softmax", kernel_initializer="zeros"),
        ]
    )
    finding = overfit_check(linear, x, y, CLASSES, steps=200)
    assert finding.evidence["accuracy"][-1] == 1.0
    assert 0.05 < finding.evidence["loss"][-1] < 0.15  # above the loss target when steps ran out
    assert finding.status == "ok", finding.advice
    assert "still falling" in finding.advice
    assert finding.evidence["tail_fall"] > 0.2


def test_memorised_with_the_loss_stuck_far_from_zero_warns():
    # Logits capped at 1.4: right on every point, but never more than 67% sure (loss >= 0.40).
    x, y = separable(8.0)
    capped = keras.Sequential(
        [
            keras.Input((CLASSES,)),
            keras.layers.Dense(
                CLASSES,
                kernel_initializer="zeros",
                bias_initializer=keras.initializers.Constant(0.7),
            ),
            keras.layers.ReLU(max_value=1.4),
            keras.layers.Softmax(),
        ]
    )
    finding = overfit_check(capped, x, y, CLASSES, steps=300)
    assert finding.evidence["accuracy"][-1] == 1.0
    assert finding.evidence["loss"][-1] == pytest.approx(0.40, abs=0.02)
    assert finding.status == "warn"
    assert "stopped falling" in finding.advice


def test_a_frozen_head_cannot_overfit(features):
    x, y = features
    frozen = head(x)
    frozen.trainable = False
    subset = tiny_subset(y)
    finding = overfit_check(frozen, x[subset], y[subset], CLASSES)
    assert finding.status == "fail"
    assert "frozen" in finding.advice


def test_labels_that_do_not_match_the_images_cannot_be_memorised_by_a_tiny_model():
    # Constant inputs (what broken preprocessing produces) cannot be told apart.
    x = np.ones((20, 8), dtype="float32")
    y = np.arange(20) % CLASSES
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(CLASSES, "softmax")])
    finding = overfit_check(model, x, y, CLASSES, steps=50)
    assert finding.status == "fail"
