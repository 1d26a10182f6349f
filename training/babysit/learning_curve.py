"""``more_data``: would more images of the same kind help? A learning curve on the features.

The head is trained on 10%, 25%, 50% and 100% of the training images (each class sampled in
proportion, three seeds per fraction) over the frozen backbone's features computed once, and
scored on the whole validation split. An inverse power law through the points
(:mod:`training.babysit.power_law`) projects the validation accuracy at 2× and 4× the images,
with 90% bands from a bootstrap over the seeds' points.

The head is ``label_noise``'s linear head (shrinkage LDA on standardized features): no setting
to tune, deterministic (so the points differ only by which images were drawn), and with no
learning rate or epoch count that a smaller subset would feel differently from a larger one (a
fixed number of epochs gives 10% of the images 10% of the steps: a curve that rises from
under-training, not from data). What it measures is the frozen-feature head, not the fine-tuned
model: a ceiling on what more images do for phase 1, and a floor under what they do for phase 2.

Right or silent: on features at chance (random weights) the curve is flat at chance, and
"flat" would blame the data; it says the curve cannot be read instead. A band that neither
clears a gain nor rules one out says so, and names nothing.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import threadpool_limits

from training.babysit.advice import stronger_features
from training.babysit.findings import Finding
from training.babysit.label_noise import linear_head
from training.babysit.power_law import bootstrap_gains, fit_power_law

CHECK = "more_data"
FRACTIONS = (0.1, 0.25, 0.5, 1.0)
SEEDS = 3
"""Draws per fraction below 100% (the whole set is one draw: the head is deterministic)."""
MULTIPLES = (2, 4)
BAND = (5.0, 95.0)
"""Percentiles of the bootstrap that bound a projection: a 90% band."""
WORTH = 0.01
"""A gain per doubling worth saying (1 point): "rising" needs the estimate at least this; a band
wholly under it is "flat"."""
CLEAR = 0.005
""""Rising" also needs the band's low end at least half a point above no gain."""
CHANCE_MARGIN = 0.05
"""Validation accuracy within 5 points of a constant guess (the largest class's share) is at
chance, whatever the size of the split…"""
CHANCE_Z = 2.0
"""…or within 2 standard errors of it: 60 images of 2 classes are ±13 points by luck alone."""
HIGH = 0.97
"""At or above this accuracy a flat curve is good news, not a limit to work around."""
LINE_POINTS = 32
"""Points of the drawn curve and its band, from the smallest subset to 4× the images."""


def stratified_rows(labels: np.ndarray, fraction: float, rng: np.random.Generator):
    """(rows, None): ``fraction`` of each class's rows, at least one; (None, why) when some
    class would get less than one image."""
    classes, counts = np.unique(labels, return_counts=True)
    smallest = int(np.argmin(counts))
    if fraction * counts[smallest] < 1:
        return None, (
            f"{fraction:.0%} of class {classes[smallest]}'s {counts[smallest]} training images "
            "is less than one image"
        )
    rows = [
        rng.choice(np.flatnonzero(labels == c), max(1, round(fraction * n)), replace=False)
        for c, n in zip(classes, counts, strict=True)
    ]
    return np.sort(np.concatenate(rows)), None


def head_accuracy(train_x, train_y, val_x, val_y) -> float:
    """Validation accuracy of the linear head trained on (``train_x``, ``train_y``)."""
    classes = len(np.unique(train_y))
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore", RuntimeWarning)  # constant columns after scaling
        warnings.simplefilter("ignore", UserWarning)  # collinear variables
        warnings.simplefilter("ignore", ConvergenceWarning)
        head = linear_head(len(train_y), classes).fit(_clean(train_x), train_y)
        guess = head.predict(_clean(val_x))
    return float(np.mean(guess == val_y))


def _clean(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x).reshape(len(x), -1).astype(np.float64)
    return np.nan_to_num(x, posinf=0, neginf=0)


def measure_points(
    train_x, train_y, val_x, val_y, fractions=FRACTIONS, seeds: int = SEEDS, seed: int = 0
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(points, skipped): ``{"fraction", "images", "seed", "accuracy"}`` per head trained, the
    whole set (fraction 1) last whatever ``fractions`` says, and ``{"fraction", "why"}`` per
    fraction left out."""
    train_y = np.asarray(train_y).astype(np.int64).reshape(-1)
    val_y = np.asarray(val_y).astype(np.int64).reshape(-1)
    points, skipped = [], []
    for fraction in sorted({min(float(f), 1.0) for f in fractions} | {1.0}):
        for draw in range(1 if fraction >= 1 else seeds):
            rng = np.random.default_rng([seed, draw, round(fraction * 1000)])
            rows, why = stratified_rows(train_y, fraction, rng)
            if rows is None:
                skipped.append({"fraction": fraction, "why": why})
                break
            accuracy = head_accuracy(train_x[rows], train_y[rows], val_x, val_y)
            points.append(
                {
                    "fraction": fraction,
                    "images": len(rows),
                    "seed": draw,
                    "accuracy": round(accuracy, 6),
                }
            )
    return points, skipped


def learning_curve(
    train_x,
    train_y,
    val_x,
    val_y,
    *,
    fractions=FRACTIONS,
    seeds: int = SEEDS,
    seed: int = 0,
    chance_gate: bool = True,
) -> dict[str, Any]:
    """The curve, its fit, the projections at 2× and 4× and the verdict, as plain data.

    The verdict is ``rising`` (doubling adds at least a point, its band clear of zero),
    ``flat`` (the whole band under a point), ``unclear`` (neither) or ``unreadable``;
    ``cause`` (``no_validation``, ``one_class``, ``chance``, ``too_few_sizes``) and ``reason``
    say why for the last. ``chance_gate=False`` fits a curve at chance too, its verdict still
    ``unreadable`` (``bench/learning_curve.py`` measures what the projection would have said).
    """
    started = time.monotonic()
    train_y = np.asarray(train_y).astype(np.int64).reshape(-1)
    val_y = np.zeros(0, np.int64) if val_y is None else np.asarray(val_y).astype(np.int64)
    curve: dict[str, Any] = {
        "head": "linear head (shrinkage LDA) on the frozen backbone's features",
        "images": len(train_y),
        "val_images": len(val_y),
        "classes": len(np.unique(train_y)),
        "fractions": list(fractions),
        "seeds": seeds,
        "band": list(BAND),
        "points": [],
        "skipped": [],
        "fit": None,
        "projections": [],
        "line": [],
        "verdict": "unreadable",
        "cause": None,
        "reason": None,
    }
    if len(val_y) == 0 or val_x is None:
        return _done(curve, started, "no_validation", "there are no validation images to score on")
    if curve["classes"] < 2:
        return _done(curve, started, "one_class", "the training split has fewer than two classes")
    points, skipped = measure_points(train_x, train_y, val_x, val_y, fractions, seeds, seed)
    curve["points"], curve["skipped"] = points, skipped
    chance = float(np.bincount(val_y).max() / len(val_y))
    luck = max(CHANCE_MARGIN, CHANCE_Z * math.sqrt(chance * (1 - chance) / len(val_y)))
    curve["chance"], curve["chance_band"] = _r(chance), _r(chance + luck)
    anchor = curve["accuracy"] = points[-1]["accuracy"]  # the whole set, scored last
    at_chance = anchor <= chance + luck
    if at_chance and not chance_gate:
        _project(curve, points, len(val_y), seed)
    if at_chance:
        return _done(
            curve,
            started,
            "chance",
            f"the head is at chance with every training image ({anchor:.0%}; a constant guess "
            f"gets {chance:.0%}, ±{luck:.0%} by luck on {len(val_y)} validation images), so "
            "the features carry too little to tell what more images would do",
        )
    if not _project(curve, points, len(val_y), seed):
        distinct = len({p["images"] for p in points})
        return _done(
            curve,
            started,
            "too_few_sizes",
            f"only {distinct} training-set size{'s' if distinct != 1 else ''} could be scored "
            "(a fraction with less than one image per class is left out); the curve needs 3",
        )
    doubled = curve["projections"][0]
    if doubled["gain"] >= WORTH and doubled["gain_low"] >= CLEAR:
        curve["verdict"] = "rising"
    elif doubled["gain_high"] < WORTH:
        curve["verdict"] = "flat"
    else:
        curve["verdict"] = "unclear"
    return _done(curve, started)


def _project(curve: dict[str, Any], points, val_images: int, seed: int) -> bool:
    """Fill ``fit``, ``projections`` (at each of ``MULTIPLES``: the accuracy and where one
    training set of that size lands; the gain and where the curve's rise lies) and ``line`` (the
    fitted curve and its band, to draw); False when there are too few sizes to fit."""
    anchor, total = curve["accuracy"], curve["images"]
    sizes = [p["images"] for p in points]
    accuracies = [p["accuracy"] for p in points]
    law = fit_power_law(sizes, accuracies, total, anchor)
    if law is None:
        return False
    curve["fit"] = {"formula": "acc(n) = a − b·n^(−c)", **law.to_dict()}
    grid = np.geomspace(min(sizes) / total, max(MULTIPLES), LINE_POINTS)
    spread = draw_spread(points, total, val_images)
    curve["draw_sd"] = _r(spread(total))
    expected, one_draw = bootstrap_gains(
        sizes, accuracies, total, anchor, [*MULTIPLES, *grid], draw_sd=spread, seed=seed
    )
    gain_low, gain_high = np.percentile(expected, BAND, axis=0)
    low, high = anchor + np.percentile(one_draw, BAND, axis=0)
    for i, k in enumerate(MULTIPLES):
        gain = float(law(k * total)) - anchor
        curve["projections"].append(
            {
                "multiple": k,
                "images": k * total,
                "accuracy": _r(anchor + gain),
                "low": _r(low[i]),
                "high": _r(high[i]),
                "gain": _r(gain),
                "gain_low": _r(gain_low[i]),
                "gain_high": _r(gain_high[i]),
            }
        )
    at = len(MULTIPLES)
    curve["line"] = [
        {
            "images": _r(k * total, 2),
            "accuracy": _r(float(law(k * total))),
            "low": _r(low[at + j]),
            "high": _r(high[at + j]),
        }
        for j, k in enumerate(grid)
    ]
    return True


def draw_spread(points, total: int, val_images: int):
    """``sd(n)``: how far the validation accuracy of one training set of n images lands from
    the curve, from the seeds' spread at each fraction.

    Subsets of one training set vary less than fresh sets of the same size (a fraction f of N
    shares its images with the others), so each fraction's variance is scaled by 1/(1 − f);
    the variance falls as 1/n (pooled over the fractions, weighted by their degrees of freedom),
    and is never under one validation image's worth of accuracy."""
    pooled, weight = 0.0, 0
    for fraction in sorted({p["fraction"] for p in points if p["fraction"] < 1}):
        values = [p["accuracy"] for p in points if p["fraction"] == fraction]
        if len(values) < 2:
            continue
        images = next(p["images"] for p in points if p["fraction"] == fraction)
        variance = float(np.var(values, ddof=1)) / max(1 - images / total, 1e-6)
        pooled += (len(values) - 1) * variance * images
        weight += len(values) - 1
    scale = pooled / weight if weight else 0.0
    floor = 1.0 / max(val_images, 1)
    return lambda n: max(math.sqrt(scale / max(n, 1)), floor)


def _done(curve: dict[str, Any], started: float, cause=None, reason=None) -> dict[str, Any]:
    curve["cause"], curve["reason"] = cause, reason
    curve["seconds"] = round(time.monotonic() - started, 2)
    return curve


def _r(value: float, digits: int = 6) -> float:
    return round(float(value), digits)


def points_text(value: float) -> str:
    """A gain in percentage points: ``4``, ``0.4`` (one decimal under 2 points), ``−1``."""
    points = value * 100
    text = f"{points:.1f}" if abs(points) < 2 else f"{points:.0f}"
    return "0" if text in ("0.0", "-0.0", "-0") else text.replace("-", "−")


def gain_range(projection: Mapping[str, Any]) -> str:
    """``2–6``; ``−1 to 3`` where a dash would read as a minus."""
    low, high = points_text(projection["gain_low"]), points_text(projection["gain_high"])
    return f"{low} to {high}" if low.startswith("−") else f"{low}–{high}"


def gain_text(projection: Mapping[str, Any]) -> str:
    """``about 4 points (2–6)``."""
    gain = points_text(projection["gain"])
    unit = "point" if gain == "1" else "points"
    return f"about {gain} {unit} ({gain_range(projection)})"


def summary_line(curve: Mapping[str, Any]) -> str:
    """The verdict in one line with its numbers (the finding's ``measured``)."""
    projections = curve.get("projections") or []
    if curve.get("verdict") == "unreadable" or not projections:
        return f"cannot read the curve: {curve.get('reason') or 'no curve'}"
    doubled = projections[0]
    now = f"{curve['accuracy']:.0%} with {curve['images']} training images"
    ahead = "; ".join(
        f"{p['multiple']}×: {p['accuracy']:.0%} ({p['low']:.0%}–{p['high']:.0%})"
        for p in projections
    )
    if curve["verdict"] == "flat":
        added = f"under 1 point ({gain_range(doubled)})"
    else:
        added = gain_text(doubled)
    return f"{curve['verdict']}: {now}; doubling adds {added}; {ahead}"


def more_data_finding(
    curve: Mapping[str, Any], settings: Mapping[str, Any] | None = None
) -> Finding:
    """``more_data`` from :func:`learning_curve`'s result; always ``ok`` (what more images would
    do is advice, not a fault), its numbers in ``measured`` and the curve in ``evidence``."""
    return Finding(
        CHECK,
        "ok",
        measured=summary_line(curve),
        expected="the validation accuracy the head reaches with 2× and 4× the training images "
        "(inverse power law through 10–100% of them, 90% band)",
        advice=advice(curve, settings),
        evidence=dict(curve),
    )


def advice(curve: Mapping[str, Any], settings: Mapping[str, Any] | None = None) -> str:
    """What to do about the curve, in words, with its numbers."""
    verdict = curve.get("verdict")
    projections = curve.get("projections") or []
    if verdict == "unreadable" or not projections:
        return (
            f"The learning curve cannot be read: {curve.get('reason') or 'no curve'}. "
            + (
                f"Use stronger features first: {stronger_features(settings)}."
                if curve.get("cause") == "chance"
                else ""
            )
        ).strip()
    doubled, quadrupled = projections[0], projections[-1]
    if verdict == "rising":
        return (
            f"More images of the same kind will help: doubling the training images should add "
            f"{gain_text(doubled)} to the head's {curve['accuracy']:.0%} on validation, 4× "
            f"{gain_text(quadrupled)}. Collect more, in proportion to the classes."
        )
    if verdict == "flat" and curve["accuracy"] >= HIGH:
        return (
            f"Nothing to do: the head is at {curve['accuracy']:.0%} on validation, and twice "
            f"the images add under 1 point (band {gain_range(doubled)})."
        )
    if verdict == "flat":
        remedy = (
            stronger_features(settings)
            if str((settings or {}).get("weights", "")).lower() == "none"
            else "a bigger backbone (--backbone)"
        )
        return (
            f"More of the same images will not help: doubling them adds under 1 point "
            f"(band {gain_range(doubled)}); the head levels off near {curve['fit']['a']:.0%}. Try "
            f"{remedy}, fine-tune deeper (--unfreeze), or look at the labels (label_noise)."
        )
    return (
        f"The curve cannot tell yet: doubling the training images would add "
        f"{gain_text(doubled)}, a band that neither rules a gain out nor clears one. More "
        "validation images (to score on) narrow it."
    )


def format_curve(curve: Mapping[str, Any], settings: Mapping[str, Any] | None = None) -> str:
    """The CLI's report: accuracy per size (mean and range over the seeds), the projections,
    the fit and the advice."""
    lines = [f"Learning curve ({curve.get('head', 'head')}):"]
    by_size: dict[int, list[float]] = {}
    for p in curve.get("points") or []:
        by_size.setdefault(p["images"], []).append(p["accuracy"])
    for images, values in sorted(by_size.items()):
        spread = f" ({min(values):.1%}–{max(values):.1%})" if len(values) > 1 else ""
        lines.append(f"  {images:>7} images  val accuracy {np.mean(values):.1%}{spread}")
    for s in curve.get("skipped") or []:
        lines.append(f"  {s['fraction']:>6.0%} left out: {s['why']}")
    for p in curve.get("projections") or []:
        lines.append(
            f"  {p['images']:>7} images  projected {p['accuracy']:.1%} "
            f"({p['low']:.1%}–{p['high']:.1%}, {p['multiple']}×)"
        )
    fit = curve.get("fit")
    if fit:
        lines.append(
            f"  fit: acc(n) = {fit['a']:.3f} − {fit['b']:.4g}·n^(−{fit['c']:.3g}) "
            f"(rms error {fit['rmse']:.3f})"
        )
    lines.append(summary_line(curve))
    lines.append(advice(curve, settings))
    return "\n".join(lines)
