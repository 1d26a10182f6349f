"""The learning-rate range test: designed sweeps (pure analysis) and one real sweep."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from training.babysit.lr_range import analyse_sweep, smooth, sweep_learning_rates

RATES = np.geomspace(1e-7, 10, 100)


def u_curve(explode_at: float | None = 1.0) -> np.ndarray:
    """Flat until 1e-5, falls until 1e-2, rises after, explodes (NaN) from ``explode_at``."""
    logs = np.log10(RATES)
    loss = np.where(logs < -5, 2.3, 2.3 - 0.6 * (logs + 5))
    loss = np.where(logs > -2, 2.3 - 1.8 + 2.0 * (logs + 2), loss)
    if explode_at is not None:
        loss = np.where(explode_at <= RATES, np.nan, loss)
    return loss


def test_u_shaped_sweep_suggests_the_falling_window():
    finding = analyse_sweep(RATES, u_curve())
    assert finding.status == "ok"
    low, high = finding.evidence["suggested"]
    assert 1e-6 < low < 1e-3  # the loss starts moving at 1e-5 (the smoothed one a bit later)
    assert 1e-3 < high <= 2e-2  # the lowest loss (smoothed, lagging) is around 1e-2
    assert low < finding.evidence["steepest"] < high
    assert finding.evidence["explodes_at"] == pytest.approx(RATES[RATES >= 1.0][0])
    assert finding.action == {
        "op": "narrow",
        "param": "lr",
        "low": low,
        "high": high,
        "to": [low, high],
    }
    assert None in finding.evidence["loss"]  # NaN is stored as a gap, not as NaN


def test_a_loss_that_never_falls_fails_and_blames_the_model_not_the_rate():
    flat = np.full(100, 1.1) + np.random.default_rng(0).normal(0, 0.005, 100)
    finding = analyse_sweep(RATES, flat)
    assert finding.status == "fail"
    assert "frozen" in finding.advice
    assert finding.action is None


def test_a_loss_that_falls_only_a_little_warns_without_narrowing_the_search():
    weak = np.linspace(1.4, 1.33, 100)  # 5% lower by the end: weak features, not a broken model
    finding = analyse_sweep(RATES, weak)
    assert finding.status == "warn"
    assert "pretrained" in finding.advice and finding.action is None


def test_a_flat_sweep_after_a_memorised_subset_blames_the_features_never_a_frozen_model():
    flat = np.full(100, 1.1) + np.random.default_rng(0).normal(0, 0.005, 100)
    random = analyse_sweep(RATES, flat, learns=True, weights="none")
    assert random.status == "warn" and random.evidence["cause"] == "features"
    assert "random weights (--weights none)" in random.advice and "--weights PATH" in random.advice
    assert "frozen" not in random.advice
    pretrained = analyse_sweep(RATES, flat, learns=True, weights="imagenet")
    assert pretrained.status == "warn" and "label_noise" in pretrained.advice
    assert "random weights" not in pretrained.advice
    frozen = analyse_sweep(RATES, flat, learns=False, weights="none")
    assert frozen.status == "fail" and "frozen" in frozen.advice


def test_a_loss_that_explodes_at_once_fails():
    losses = np.array([2.3, 2.4, 9.0, np.nan])
    finding = analyse_sweep(RATES[:4], losses)
    assert finding.status == "fail"


def test_loss_moving_from_the_first_rate_warns_that_the_sweep_started_high():
    losses = 0.3 + 2.0 * np.exp(-0.15 * np.arange(60))  # falling from the very first rate
    finding = analyse_sweep(RATES[40:], losses)
    assert finding.status == "warn"


def test_smoothing_keeps_the_start_and_propagates_nan():
    values = smooth(np.array([2.0, 2.0, 2.0, np.nan, 1.0]))
    assert values[0] == pytest.approx(2.0)  # bias-corrected: no pull toward zero
    assert math.isnan(values[3]) and math.isnan(values[4])


@pytest.mark.core
def test_real_sweep_on_separable_features_finds_a_window_and_stops_on_explosion():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 600)
    x = (rng.normal(0, 1, (600, 16)) + 1.5 * np.eye(3, 16)[y]).astype("float32")

    def make_model():
        return keras.Sequential(
            [keras.Input((16,)), keras.layers.Dense(3, "softmax", kernel_initializer="zeros")]
        )

    rates, losses = sweep_learning_rates(
        make_model,
        x,
        y,
        keras.optimizers.SGD,
        "sparse_categorical_crossentropy",
        64,
        lr_range=(1e-5, 1e4),
        steps=80,
    )
    assert losses[0] == pytest.approx(np.log(3), rel=1e-3)  # zero weights: uniform output
    finding = analyse_sweep(rates, losses)
    assert finding.status == "ok", finding.measured
    low, high = finding.evidence["suggested"]
    assert 1e-4 < low < high < 1e3
    if finding.evidence["explodes_at"] is not None:
        assert len(rates) < 80  # the sweep stopped where the loss exploded
