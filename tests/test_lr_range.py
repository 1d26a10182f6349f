"""The learning-rate range test: designed sweeps (pure analysis) and one real sweep."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from training.babysit.lr_range import analyse_sweep, smooth, sweep_learning_rates
from training.config import TrainConfig
from training.fit.lr_auto import sweep_finding
from training.model.classifier import build_head

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


def test_a_rate_inside_the_window_stays_ok_and_one_outside_warns_with_a_move():
    inside = analyse_sweep(RATES, u_curve(), rate=1e-3)
    assert inside.status == "ok" and inside.action["op"] == "narrow"
    assert inside.evidence["rate"] == 1e-3
    low, high = inside.evidence["suggested"]
    floor = inside.evidence["moves_from"]  # where the loss starts to fall: slow, but it trains
    assert floor < low and analyse_sweep(RATES, u_curve(), rate=floor * 1.1).status == "ok"
    to = inside.evidence["suggested_rate"]
    assert low <= to <= high and to == float(f"{to:.1g}")  # one digit: 0.007, not 0.0071
    for rate, op, side in ((1e-6, "raise", "below"), (0.5, "lower", "above")):
        outside = analyse_sweep(RATES, u_curve(), rate=rate)
        assert outside.status == "warn"
        assert outside.action == {"op": op, "param": "lr", "from": rate, "to": to}
        falls = f"[{floor:.1e}, {high:.1e}] where the loss falls"
        assert outside.measured.startswith(f"lr {rate:.1e} {side} {falls}; search window [")
        assert f"head rate {rate:g} is {side} the range {falls}" in outside.advice
        assert f"--lr {to:g}" in outside.advice
        assert outside.evidence["suggested"] == [low, high]  # the search's window is kept


def scaled_features(scale: float) -> tuple[np.ndarray, np.ndarray]:
    """256 non-negative features (like pooled ones), 8 of them per class raised by 1, × scale."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 600)
    means = np.zeros((3, 256))
    for c in range(3):
        means[c, c * 8 : (c + 1) * 8] = 1.0
    return (scale * (np.abs(rng.normal(0, 1, (600, 256))) + means[y])).astype("float32"), y


def head_accuracy(x: np.ndarray, y: np.ndarray, lr: float, epochs: int = 3) -> float:
    head = build_head(x.shape[1], 3, dropout=0.0, l2=0.0, head_units=0, seed=0)
    head.compile(
        optimizer=keras.optimizers.Adam(lr),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return head.fit(x, y, epochs=epochs, batch_size=32, verbose=0).history["accuracy"][-1]


def test_features_scaled_down_put_the_default_rate_below_the_window_and_the_move_trains():
    """Pooled features 0.03× as large (as a backbone pretrained on other photos gives) need a
    rate ~30× higher: the default 1e-3 then sits below the window, and the action's rate trains
    the head where the default barely moves it."""
    config = TrainConfig(data="unused", backbone="VGG16")  # the default --lr 1e-3
    base = sweep_finding(*scaled_features(3.0), 3, config)
    assert base.action["op"] == "narrow"  # 1e-3 inside this window: nothing to move
    x, y = scaled_features(3.0 * 0.03)
    finding = sweep_finding(x, y, 3, config)
    assert finding.status == "warn" and finding.action["op"] == "raise"
    low, high = finding.evidence["suggested"]
    assert finding.action == {"op": "raise", "param": "lr", "from": 1e-3, "to": pytest.approx(
        finding.evidence["suggested_rate"])}  # fmt: skip
    to = finding.action["to"]
    assert 1e-3 < low <= to <= high
    assert 10 < to / base.evidence["suggested_rate"] < 100  # the window moved ~30× up
    assert f"below [{finding.evidence['moves_from']:.1e}, {high:.1e}]" in finding.measured
    assert finding.evidence["moves_from"] > 1e-2  # the default is far below where it falls
    assert head_accuracy(x, y, to) > max(0.9, head_accuracy(x, y, 1e-3) + 0.3)
