"""The learning-rate range test: one short sweep that shows too low, just right and too high.

The rate grows exponentially batch by batch while the loss is recorded (Smith 2017; CS231n's
"loss not going down: too low; loss exploding: too high"). Where the smoothed loss has not moved
yet the rate is too low; where it falls fastest is the heart of the useful window; where it
passes 3× its start or turns NaN the rate is too high. The suggested window is what the tuner
searches (the finding's ``action``, or its ``evidence["suggested"]``); the point where the loss
falls fastest, inside it, is the rate to train at (``train --lr auto``). Given the run's own
rate, a rate outside the window warns and moves it to that point.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import keras
import numpy as np

from training.babysit.findings import Finding
from training.babysit.thresholds import (
    LR_EXPLODE_FACTOR,
    LR_FLAT_DROP,
    LR_MIN_DROP,
    LR_RANGE,
    LR_RANGE_STEPS,
    LR_SMOOTHING,
)
from training.config import SEARCH_LIMITS


def sweep_learning_rates(
    make_model: Callable[[], keras.Model],
    x: np.ndarray,
    y: np.ndarray,
    make_optimizer: Callable[[float], keras.optimizers.Optimizer],
    loss: keras.losses.Loss,
    batch_size: int,
    lr_range: tuple[float, float] = LR_RANGE,
    steps: int = LR_RANGE_STEPS,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Train a fresh model one batch per rate, rates spaced evenly in log space.

    Returns the rates tried and the loss of each batch (before its update). Stops early once the
    loss explodes, so the top of the range costs nothing.
    """
    model = make_model()
    model.compile(optimizer=make_optimizer(lr_range[0]), loss=loss)
    rates = np.geomspace(lr_range[0], lr_range[1], steps)
    rng = np.random.default_rng(seed)
    batch = min(batch_size, len(x))
    losses: list[float] = []
    start = None
    for rate in rates:
        model.optimizer.learning_rate.assign(float(rate))
        rows = rng.choice(len(x), size=batch, replace=False)
        model.reset_metrics()
        value = float(model.train_on_batch(x[rows], y[rows], return_dict=True)["loss"])
        losses.append(value)
        if start is None:
            start = value
        if not math.isfinite(value) or value > LR_EXPLODE_FACTOR * max(start, 1e-8):
            break
    return rates[: len(losses)], np.asarray(losses, dtype=np.float64)


def smooth(losses: np.ndarray, beta: float = LR_SMOOTHING) -> np.ndarray:
    """Bias-corrected exponential moving average; NaN/inf stay where they appear."""
    out, average = np.empty(len(losses)), 0.0
    for i, value in enumerate(losses):
        if not math.isfinite(value):
            out[i:] = value
            break
        average = beta * average + (1 - beta) * value
        out[i] = average / (1 - beta ** (i + 1))
    return out


def _weak_features(drop, rates, end, weights, evidence, expected) -> Finding:
    """A sweep that barely moved while the tiny subset was memorised: the head can learn, so
    the features (not a frozen model) are what fail to separate the classes."""
    if weights == "none":
        cause = (
            "the backbone has random weights (--weights none), whose features barely separate "
            "these classes. Use a local weights file (--weights PATH), or --weights imagenet "
            "where it can be downloaded"
        )
    else:
        cause = (
            "the backbone's features barely separate these classes: random weights (use "
            "pretrained ones), images unlike its training data or too small for it (raise "
            "--image-size), or noisy labels (see label_noise)"
        )
        if weights is not None:
            cause = cause.replace("random weights (use pretrained ones), ", "")
    return Finding(
        "lr_range",
        "warn",
        measured=f"lowest loss only {drop:.1%} below the start over lr "
        f"{rates[0]:.1e}…{rates[end - 1]:.1e}",
        expected=f"a fall of at least {LR_MIN_DROP:.0%} somewhere in the sweep",
        advice=f"The loss falls little at every rate, yet the head memorised a tiny subset, so "
        f"it can learn: {cause}. The search keeps its default learning-rate range.",
        evidence={**evidence, "cause": "features"},
    )


def analyse_sweep(
    rates: np.ndarray,
    losses: np.ndarray,
    *,
    learns: bool | None = None,
    weights: str | None = None,
    rate: float | None = None,
) -> Finding:
    """``lr_range``: where the loss starts moving, falls fastest, is lowest and explodes.

    Args:
        rates, losses: The sweep (:func:`sweep_learning_rates`).
        learns: Whether ``overfit_tiny_subset`` passed (the head can learn). A sweep that barely
            moves is then blamed on the features, never on a frozen model.
        weights: The run's ``--weights`` (``"none"``: random weights are named as the cause).
        rate: The run's head rate (``--lr``), judged against the window; None judges none.
    """
    rates = np.asarray(rates, dtype=np.float64)
    curve = smooth(np.asarray(losses, dtype=np.float64))
    evidence = {"lr": rates.tolist(), "loss": _finite(curve), "raw_loss": _finite(losses)}
    expected = "a window where the loss falls, below the rate where it explodes"
    if len(curve) < 5 or not math.isfinite(curve[0]):
        return Finding(
            "lr_range",
            "fail",
            measured=f"the loss exploded within {len(curve)} steps from lr {rates[0]:.1e}",
            expected=expected,
            advice="Even the smallest rate explodes: check the inputs (NaN pixels, wrong "
            "preprocessing) and the labels before tuning anything.",
            evidence=evidence,
        )
    raw = np.asarray(losses, dtype=np.float64)
    # The first few rates are far too small to train: their mean is a steadier start than one
    # noisy batch.
    head = raw[: min(5, len(raw))]
    start = float(np.mean(head)) if np.isfinite(head).all() else curve[0]
    # The sweep stops on the first raw batch over the limit; the smoothed curve lags behind it.
    exploded = ~np.isfinite(raw) | (raw > LR_EXPLODE_FACTOR * start)
    end = int(np.argmax(exploded)) if exploded.any() else len(curve)
    valid = curve[:end]
    lowest = int(np.argmin(valid))
    drop = (start - valid[lowest]) / max(start, 1e-12)
    evidence["lowest_loss_at"] = float(rates[lowest])
    if drop < LR_MIN_DROP and (learns or (learns is None and drop >= LR_FLAT_DROP)):
        return _weak_features(drop, rates, end, weights, evidence, expected)
    if drop < LR_MIN_DROP:
        return Finding(
            "lr_range",
            "fail",
            measured=f"lowest loss only {drop:.1%} below the start over lr "
            f"{rates[0]:.1e}…{rates[end - 1]:.1e}",
            expected=f"a fall of at least {LR_MIN_DROP:.0%} somewhere in the sweep",
            advice="No learning rate makes the loss fall and the head could not memorise a tiny "
            "subset either: the head is probably frozen or the inputs carry nothing (constant "
            "images, broken preprocessing). See overfit_tiny_subset.",
            evidence={**evidence, "cause": "model"},
        )
    moved = valid < start * (1 - LR_FLAT_DROP)
    moving = int(np.argmax(moved))
    slope = np.gradient(valid, np.log(rates[:end])) if end > 1 else np.zeros(1)
    steepest = int(np.argmin(slope[: lowest + 1]))
    explodes_at = float(rates[end]) if end < len(rates) else None
    high = float(rates[lowest])
    if explodes_at is not None:
        high = min(high, explodes_at / 10)
    low = max(float(rates[moving]), float(rates[steepest]) / 30)
    if low > high / 3:
        low = high / 10
    evidence.update(
        suggested=[low, high],
        moves_from=float(rates[moving]),
        steepest=float(rates[steepest]),
        lowest_loss_at=float(rates[lowest]),
        explodes_at=explodes_at,
        suggested_rate=suggested_rate(low, high, float(rates[steepest])),
    )
    measured = (
        f"window [{low:.1e}, {high:.1e}]: moves from {rates[moving]:.1e}, falls fastest at "
        f"{rates[steepest]:.1e}, lowest at {rates[lowest]:.1e}, "
        + (f"explodes at {explodes_at:.1e}" if explodes_at else "no explosion")
    )
    status, advice = (
        "ok",
        (
            f"Search the learning rate in [{low:.1e}, {high:.1e}] (log scale): below "
            f"{rates[moving]:.1e} the loss does not move; "
            + (f"from {explodes_at:.1e} it explodes." if explodes_at else "it did not explode.")
        ),
    )
    if moving <= 6:  # within the start window and the smoothing's lag of the first rate
        status = "warn"
        advice += " The loss moved from the very first rate: the sweep may have started too high."
    finding = Finding(
        "lr_range",
        status,
        measured=measured,
        expected=expected,
        advice=advice,
        evidence=evidence,
        action={"op": "narrow", "param": "lr", "low": low, "high": high, "to": [low, high]},
    )
    return finding if rate is None else judge_rate(finding, rate)


def suggested_rate(low: float, high: float, steepest: float) -> float:
    """The rate to train at: where the loss falls fastest, kept inside the window and under
    ``SEARCH_LIMITS`` (where advice stops), to one significant digit where that stays inside
    (0.03 rather than 0.0287)."""
    rate = min(max(steepest, low), high, SEARCH_LIMITS["lr"][1])
    rounded = float(f"{rate:.1g}")
    return rounded if low <= rounded <= high else rate


def judge_rate(finding: Finding, rate: float) -> Finding:
    """``finding`` (a sweep with a window) judging the run's own head rate against where the loss
    falls: from where it starts to move to the window's top. Outside, it warns, names both, and
    its action moves the rate to the steepest fall; between the start and the search window's
    low end a rate still trains (more slowly) and stays ok."""
    evidence = {**finding.evidence, "rate": rate}
    floor, high = evidence["moves_from"], evidence["suggested"][1]
    to = evidence["suggested_rate"]
    if floor <= rate <= high:
        return dataclasses.replace(finding, evidence=evidence)
    side, where = (
        ("below", "the loss does not move there, so the head learns too slowly in a run's epochs")
        if rate < floor
        else ("above", "there the loss stops falling or explodes")
    )
    falls = f"[{floor:.1e}, {high:.1e}]"
    return dataclasses.replace(
        finding,
        status="warn",
        measured=f"lr {rate:.1e} {side} {falls} where the loss falls; search {finding.measured}",
        advice=f"The run's head rate {rate:g} is {side} the range {falls} where the loss falls: "
        f"{where}. Train at --lr {to:g}, where it falls fastest (train --lr auto picks it). "
        + finding.advice,
        evidence=evidence,
        action={
            "op": "raise" if side == "below" else "lower",
            "param": "lr",
            "from": rate,
            "to": to,
        },
    )


def _finite(values) -> list[float | None]:
    """JSON has no NaN: non-finite points become None (a gap in the app's plot)."""
    return [float(v) if math.isfinite(v) else None for v in np.asarray(values, dtype=np.float64)]
