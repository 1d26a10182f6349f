"""The first three checks of the sanity gate, on any Keras model that maps inputs to probabilities.

They take models and arrays rather than a config so that a fault can be planted (a frozen model,
a regularizer left out) and so the tuner can reuse them on its heads.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import keras
import numpy as np

from training.babysit.findings import Finding
from training.babysit.thresholds import (
    INITIAL_LOSS_OK,
    INITIAL_LOSS_WARN,
    OVERFIT_ACCURACY,
    OVERFIT_IMAGES,
    OVERFIT_LOSS,
    OVERFIT_LR,
    OVERFIT_MIN_FALL,
    OVERFIT_STEPS,
    OVERFIT_TAIL,
    OVERFIT_WARN_ACCURACY,
    REGULARIZATION_MIN_SHARE,
    REGULARIZATION_TARGET_RISE,
)

_LOSS = "sparse_categorical_crossentropy"


def mean_loss(model: keras.Model, x: np.ndarray, y: np.ndarray, batch_size: int = 64) -> float:
    """Cross-entropy plus the model's regularization losses, in inference mode."""
    model.compile(loss=_LOSS)
    return float(model.evaluate(x, y, batch_size=batch_size, verbose=0, return_dict=True)["loss"])


def data_and_penalty(
    model: keras.Model, x: np.ndarray, y: np.ndarray, batch_size: int = 64
) -> tuple[float, float]:
    """(cross-entropy, regularization penalty) in inference mode: the two halves of the loss."""
    probabilities = np.asarray(model.predict(x, batch_size=batch_size, verbose=0), np.float64)
    picked = np.clip(probabilities[np.arange(len(y)), np.asarray(y, dtype=np.int64)], 1e-7, 1.0)
    penalty = sum(float(keras.ops.convert_to_numpy(loss)) for loss in model.losses)
    return float(-np.mean(np.log(picked))), float(penalty)


def initial_loss_check(model: keras.Model, x: np.ndarray, y: np.ndarray, num_classes: int):
    """``initial_loss``: an untrained head's data loss on real batches should be about ln(C).

    The data loss (cross-entropy) is judged; the L2 penalty of the head's initial weights is
    reported beside it, so "initial 15.1" for two classes reads "0.69 + 14.4 of L2".
    """
    expected = math.log(num_classes)
    measured, penalty = data_and_penalty(model, x, y)
    ratio = measured / expected if math.isfinite(measured) else math.inf
    evidence = {
        "loss": measured,
        "penalty": penalty,
        "total": measured + penalty,
        "ln_classes": expected,
        "ratio": ratio,
        "images": len(x),
    }
    if INITIAL_LOSS_OK[0] <= ratio <= INITIAL_LOSS_OK[1]:
        status, advice = "ok", "Nothing to do: the fresh head predicts about uniformly."
    else:
        status = "warn" if INITIAL_LOSS_WARN[0] <= ratio <= INITIAL_LOSS_WARN[1] else "fail"
        if ratio < 1:
            advice = (
                "The untrained model is already confident: labels may leak into the inputs, or "
                "a trained head was reused. Check the labels and that the head is freshly built."
            )
        else:
            advice = (
                "The untrained model is confidently wrong: the head is initialised too large, the "
                "outputs are logits fed to a probability loss (or the reverse), or the labels do "
                "not index the outputs. Check the last layer's activation, init and class count."
            )
    on_top = f"; the L2 penalty {penalty:.3g} comes on top, not judged" if penalty > 0 else ""
    return Finding(
        "initial_loss",
        status,
        measured=round(measured, 4),
        expected=f"data loss ≈ ln({num_classes}) = {expected:.3f}{on_top}",
        advice=advice,
        evidence=evidence,
    )


def penalty(model: keras.Model, strength: float) -> float:
    """``strength`` · Σ w² over the model's kernels: what an L2 of that strength should add."""
    kernels = [w for w in model.trainable_weights if "kernel" in w.path]
    return strength * sum(float(np.sum(np.square(keras.ops.convert_to_numpy(w)))) for w in kernels)


def regularization_check(
    build: Callable[[float], keras.Model], x: np.ndarray, y: np.ndarray, num_classes: int
) -> Finding:
    """``regularization_raises_loss``: the same head with L2 turned up must have a higher loss.

    ``build(l2)`` makes the head with that L2 and the same initial weights (same seed). The
    strength is chosen so the expected rise is ``REGULARIZATION_TARGET_RISE`` · ln(C), computed
    from the actual weights, so the check is sensitive for any head size.
    """
    plain = build(0.0)
    unit = penalty(plain, 1.0)
    if unit <= 0:
        return Finding(
            "regularization_raises_loss",
            "fail",
            measured="the head has no trainable kernels",
            expected="a rise of the loss with L2",
            advice="L2 has nothing to act on: the head has no trainable weights (it is frozen), "
            "so nothing can learn either. See overfit_tiny_subset; set the head's layers "
            "trainable before fitting.",
            evidence={"trainable_parameters": 0},
        )
    strength = REGULARIZATION_TARGET_RISE * math.log(num_classes) / max(unit, 1e-12)
    before = mean_loss(plain, x, y)
    regularized = build(strength)
    regularized.set_weights(plain.get_weights())
    after = mean_loss(regularized, x, y)
    expected_rise = penalty(regularized, strength)
    rise = after - before
    evidence = {
        "l2": strength,
        "loss_without": before,
        "loss_with": after,
        "expected_rise": expected_rise,
    }
    if rise >= REGULARIZATION_MIN_SHARE * expected_rise and expected_rise > 0:
        status, advice = "ok", "Nothing to do: L2 is part of the loss."
    else:
        status = "fail"
        advice = (
            "Turning L2 up did not raise the loss, so the regularizer is not in the loss: check "
            "that kernel_regularizer is set on the head's layers and that the loss adds "
            "model.losses."
        )
    return Finding(
        "regularization_raises_loss",
        status,
        measured=f"{before:.3f} → {after:.3f} with l2={strength:.3g}",
        expected=f"a rise of about {expected_rise:.3f}",
        advice=advice,
        evidence=evidence,
    )


def tiny_subset(labels: np.ndarray, size: int = OVERFIT_IMAGES, seed: int = 0) -> np.ndarray:
    """About ``size`` row indices with every class at least once (round robin over classes)."""
    rng = np.random.default_rng(seed)
    pools = [rng.permutation(np.flatnonzero(labels == c)).tolist() for c in np.unique(labels)]
    picked: list[int] = []
    while len(picked) < size and any(pools):
        for pool in pools:
            if pool and len(picked) < size:
                picked.append(pool.pop())
    return np.array(sorted(picked), dtype=np.int64)


def _tail_fall(losses: list[float]) -> tuple[float, int]:
    """(relative fall, steps): how much the loss fell over the last ``OVERFIT_TAIL`` of the steps,
    from the mean of that window's first tenth to the mean of its last tenth (a step's loss can
    bounce). NaN when there are fewer than two finite steps to compare."""
    finite = [v for v in losses if math.isfinite(v)]
    tail = finite[int(len(finite) * (1 - OVERFIT_TAIL)) :]
    if len(tail) < 2:
        return math.nan, len(tail)
    width = max(1, len(tail) // 10)
    first, last = float(np.mean(tail[:width])), float(np.mean(tail[-width:]))
    return ((first - last) / first if first > 0 else 0.0), len(tail)


def overfit_check(
    model: keras.Model,
    x: np.ndarray,
    y: np.ndarray,
    num_classes: int,
    steps: int = OVERFIT_STEPS,
    lr: float = OVERFIT_LR,
) -> Finding:
    """``overfit_tiny_subset``: without regularization, ~20 examples must be memorised.

    Full-batch Adam steps until every example is right with a loss under ``OVERFIT_LOSS`` or
    ``steps`` run out. A model that cannot do this will not learn the full set either.

    - ok: 100% accuracy, and the loss under ``OVERFIT_LOSS`` or still falling (at least
      ``OVERFIT_MIN_FALL`` over the last ``OVERFIT_TAIL`` of the steps): weak features gain
      confidence slowly, which is no fault.
    - warn: 100% accuracy with the loss stopped above ``OVERFIT_LOSS`` (something holds it up),
      or ``OVERFIT_WARN_ACCURACY`` and more short of 100%.
    - fail: less, a non-finite loss, or nothing trainable.
    """
    expected = (
        f"{OVERFIT_ACCURACY:.0%} accuracy within {steps} steps, the loss under {OVERFIT_LOSS} or "
        f"still falling ({OVERFIT_MIN_FALL:.0%}+ over the last {OVERFIT_TAIL:.0%} of the steps)"
    )
    trainable = int(sum(np.prod(w.shape) for w in model.trainable_weights))
    if trainable == 0:
        return Finding(
            "overfit_tiny_subset",
            "fail",
            measured="the model has no trainable weights",
            expected=expected,
            advice="Nothing can learn: the model (or its head) is frozen. Set the head's layers "
            "trainable before fitting.",
            evidence={"trainable_parameters": 0, "images": len(x)},
        )
    model.compile(optimizer=keras.optimizers.Adam(lr), loss=_LOSS, metrics=["accuracy"])
    losses, accuracies, logs = [], [], {"loss": math.inf, "accuracy": 0.0}
    for _ in range(steps):
        model.reset_metrics()
        logs = model.train_on_batch(x, y, return_dict=True)
        losses.append(float(logs["loss"]))
        accuracies.append(float(logs["accuracy"]))
        if not math.isfinite(losses[-1]):
            break
        if accuracies[-1] >= OVERFIT_ACCURACY and losses[-1] < OVERFIT_LOSS:
            break
    # The last step's metrics are measured before its update; score the final weights too.
    final = model.evaluate(x, y, verbose=0, return_dict=True)
    loss, accuracy = float(final["loss"]), float(final["accuracy"])
    fall, tail = _tail_fall(losses)
    evidence = {
        "images": len(x),
        "classes": len(np.unique(y)),
        "steps": len(losses),
        "loss": [v if math.isfinite(v) else None for v in losses],
        "accuracy": accuracies,
        "trainable_parameters": trainable,
        "tail_steps": tail,
        "tail_fall": fall if math.isfinite(fall) else None,
    }
    memorised = accuracy >= OVERFIT_ACCURACY and math.isfinite(loss)
    # NaN (too few steps to compare) counts as falling: there is no evidence the loss stopped.
    falling = not fall < OVERFIT_MIN_FALL
    if memorised and loss < OVERFIT_LOSS:
        status, advice = "ok", "Nothing to do: the model can memorise a tiny subset."
    elif memorised and falling:
        status = "ok"
        pace = f" ({fall:.0%} over the last {tail} steps)" if math.isfinite(fall) else ""
        advice = (
            f"Nothing to do: every image is memorised ({accuracy:.0%}); the loss, {loss:.3g}, is "
            f"above {OVERFIT_LOSS} and still falling{pace}: the model gains confidence slowly, "
            "as it does on features that barely separate the images (random weights, small "
            "images)."
        )
    elif memorised:
        status = "warn"
        advice = (
            f"Every image is memorised ({accuracy:.0%}), but the loss stopped falling at "
            f"{loss:.3g} ({fall:.0%} over the last {tail} steps): something keeps the model from "
            "becoming confident. Look for an output that is bounded or mixed with a constant, a "
            "regularizer left in the model (dropout, L2), or a learning rate so high the steps "
            "bounce."
        )
    elif accuracy >= OVERFIT_WARN_ACCURACY and math.isfinite(loss):
        status = "warn"
        advice = (
            f"Nearly memorised ({accuracy:.0%}), but the loss is still {loss:.3g}: the head "
            "learns, slowly. Features that barely separate the images do this (random weights, "
            "or images unlike the backbone's training data): prefer pretrained weights; if you "
            "have them, check that the labels match the images."
        )
    else:
        status = "fail"
        advice = (
            "The model cannot even memorise a handful of images: check that labels match the "
            "images, that preprocessing does not destroy them (all-black or constant inputs), "
            "that the trainable part is not frozen, and that the learning rate is not far off."
        )
    return Finding(
        "overfit_tiny_subset",
        status,
        measured=f"accuracy {accuracy:.0%}, loss {loss:.3g} after {len(losses)} steps",
        expected=expected,
        advice=advice,
        evidence=evidence,
    )
