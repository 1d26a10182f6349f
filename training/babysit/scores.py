"""The scores after training, read as CS231n reads them: the gap, underfitting, chance, BatchNorm.

Pure functions from the run summary (inference-mode scores per split) and, for the fit accuracy,
the last phase's history, to :class:`Finding`. Proposed changes start from the run's own values
(``settings``, the run's config) and stay inside the search's limits.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from training.babysit.advice import change, current_value, render
from training.babysit.findings import Finding
from training.babysit.history import (
    NOTHING,
    History,
    accuracy,
    as_float,
    chance,
    plain,
    series,
)
from training.babysit.thresholds import (
    BN_MISMATCH_DROP,
    CHANCE_MARGIN,
    GAP_FAIL,
    GAP_WARN,
    HIGH_DROPOUT,
    NEGATIVE_GAP,
    NO_GAP,
    TRAIN_LEARNED,
    TRAIN_MODE_GAP,
    TRAIN_MODE_STABLE,
    UNDERFIT_ACCURACY,
)


def _listing(proposals: list[str]) -> str:
    return ", ".join(p for p in proposals if p)


def _negative_gap(train, val, gap, evidence, settings, summary) -> Finding:
    """Validation clearly above training: the training set is the harder one. Why, in order."""
    images = (summary.get("val") or {}).get("images")
    dropout = current_value(settings, "dropout")
    smoothing = current_value(settings, "label_smoothing")
    augment = (settings or {}).get("augment")
    knobs = [
        f"dropout {dropout:g}" if isinstance(dropout, int | float) else "dropout",
        "augmentation " + ("on" if augment else "off") if augment is not None else "augmentation",
        f"label smoothing {smoothing:g}" if isinstance(smoothing, int | float) else "smoothing",
    ]
    action = None
    if isinstance(dropout, int | float) and dropout >= HIGH_DROPOUT:
        action = change(settings, "dropout", "lower")
    advice = (
        f"Validation accuracy {val:.0%} is {-gap * 100:.0f} points above training {train:.0%} "
        f"(both in inference mode): the training images are the harder set. Likely causes, in "
        f"order: (1) noisy or wrong training labels, see label_noise and its list of suspects; "
        f"(2) regularization that acts only in training set too strong ({', '.join(knobs)})"
        + (f": try {render(action)}" if action else "")
        + "; (3) a validation set too easy or too small"
        + (f" ({images} images)" if images else "")
        + "."
    )
    return Finding(
        "generalization_gap",
        "warn",
        round(gap, 4),
        f"≥ {-NEGATIVE_GAP:g}",
        advice,
        evidence,
        action,
    )


def generalization_gap(
    summary: Mapping[str, Any], settings: Mapping[str, Any] | None = None
) -> Finding | None:
    """``generalization_gap``: training minus validation accuracy (CS231n: "big gap =
    overfitting, increase regularization"). A gap below ``-NEGATIVE_GAP`` (validation clearly
    above training) warns too, naming its likely causes in order.

    Returns:
        None without a train and a val score.
    """
    train, val = accuracy(summary, "train"), accuracy(summary, "val")
    if train is None or val is None:
        return None
    gap = as_float(summary.get("gap", train - val))
    if not math.isfinite(gap):
        gap = train - val
    evidence = {"train_accuracy": train, "val_accuracy": val, "gap": gap}
    for split in ("train", "val"):
        loss = as_float((summary.get(split) or {}).get("loss"))
        if math.isfinite(loss):
            evidence[f"{split}_loss"] = loss
    expected = f"between {-NEGATIVE_GAP:g} and {GAP_WARN:g}"
    if gap < -NEGATIVE_GAP:
        return _negative_gap(train, val, gap, evidence, settings, summary)
    if gap <= GAP_WARN:
        return Finding("generalization_gap", "ok", round(gap, 4), expected, NOTHING, evidence)
    status = "fail" if gap > GAP_FAIL else "warn"
    action = change(settings, "l2", "raise")
    dropout = change(settings, "dropout", "raise")
    fewer = change(settings, "unfreeze", "lower")
    remedies = _listing(
        [
            render(action) or "more --l2",
            render(dropout) or "more --dropout",
            "keep augmentation on (no --no-augment)",
            render(fewer) if fewer else "",
            "or add images",
        ]
    )
    advice = (
        f"Training accuracy {train:.0%} against validation {val:.0%}: the model memorises its "
        f"training images (overfitting). Regularize: {remedies}."
    )
    return Finding("generalization_gap", status, round(gap, 4), expected, advice, evidence, action)


def underfitting(
    summary: Mapping[str, Any], num_classes: int, settings: Mapping[str, Any] | None = None
) -> Finding | None:
    """``underfitting``: low training accuracy and no gap (CS231n: "no gap, increase model
    capacity").

    Low means below chance + ``UNDERFIT_ACCURACY`` of the way to 100%. Without a validation
    score the training accuracy alone decides. Remedies in order, each from the run's value:
    a lower L2 (when set), a lower dropout (when high), then capacity (more unfrozen blocks, a
    wider head) or more epochs; the first one possible is the action.

    Returns:
        None without a training score.
    """
    train = accuracy(summary, "train")
    if train is None:
        return None
    val = accuracy(summary, "val")
    gap = None if val is None else train - val
    level = chance(num_classes)
    bar = level + UNDERFIT_ACCURACY * (1 - level)
    l2 = current_value(settings, "l2") or 0.0
    evidence = {
        "train_accuracy": train,
        "val_accuracy": val,
        "gap": gap,
        "chance": level,
        "threshold": bar,
        "l2": l2,
    }
    expected = f"training accuracy ≥ {bar:.3f} (or a gap ≥ {NO_GAP:g})"
    if train >= bar or (gap is not None and gap >= NO_GAP):
        return Finding("underfitting", "ok", round(train, 4), expected, NOTHING, evidence)
    matched = "validation matches it" if gap is not None else "there is no validation split"
    settings = settings or {}
    dropout = current_value(settings, "dropout") or 0.0
    finetunes = (settings.get("epochs_finetune") or 0) > 0
    lower_l2 = change(settings, "l2", "lower") if l2 > 0 else None
    lower_dropout = change(settings, "dropout", "lower") if dropout >= HIGH_DROPOUT else None
    unfreeze = change(settings, "unfreeze", "raise") if finetunes else None
    wider = change(settings, "head_units", "raise", 2.0)
    longer = change(settings, "epochs_head", "raise", 2.0)
    action = next((a for a in (lower_l2, lower_dropout, unfreeze, wider) if a), None)
    if lower_l2 or lower_dropout:
        what = "too constrained"
        first = _listing([render(lower_l2), render(lower_dropout)])
        rest = _listing([render(unfreeze), render(wider), render(longer)])
        advice = f"Loosen it: {first}" + (f"; if that is not enough, {rest}." if rest else ".")
    else:
        what = "lacks capacity"
        if not finetunes and current_value(settings, "unfreeze") != "all":
            unfrozen = "fine-tune the backbone (--epochs-finetune 5)"
        else:
            unfrozen = render(unfreeze)
        options = _listing([unfrozen, render(wider), render(longer)])
        advice = f"Add capacity: {options}." if options else "Add images or a larger backbone."
    advice = (
        f"Training accuracy is only {train:.0%} and {matched}: the model {what} (underfitting). "
        + advice
    )
    return Finding("underfitting", "warn", round(train, 4), expected, advice, evidence, action)


def val_at_chance(summary: Mapping[str, Any], num_classes: int) -> Finding | None:
    """``val_at_chance``: the training images are learned but validation scores like a guess.

    That is not overfitting (regularization will not fix it) but a difference between the
    splits: labels that mean different things (class folders named or filled differently,
    shuffled labels), a shortcut only the training images carry, or validation images
    preprocessed differently. Validation *below* chance counts too: swapped labels do that.

    Returns:
        None without a train and a val score.
    """
    train, val = accuracy(summary, "train"), accuracy(summary, "val")
    if train is None or val is None:
        return None
    level = chance(num_classes)
    evidence = {"train_accuracy": train, "val_accuracy": val, "chance": level}
    expected = (
        f"validation above {level + CHANCE_MARGIN:.3f} once training reaches "
        f"{level + TRAIN_LEARNED:.3f}"
    )
    if train < level + TRAIN_LEARNED or val > level + CHANCE_MARGIN:
        return Finding("val_at_chance", "ok", round(val, 4), expected, NOTHING, evidence)
    advice = (
        f"Training accuracy is {train:.0%} but validation {val:.0%} is at chance "
        f"({level:.0%}): the splits disagree. Check that train/ and val/ use the same class "
        f"folder names with the right images in each, that no training image carries a label "
        f"shortcut (a mark, border or text), and that validation is preprocessed the same way."
    )
    return Finding("val_at_chance", "fail", round(val, 4), expected, advice, evidence)


def _fit_and_inference(history: History, summary: Mapping[str, Any]):
    """(fit accuracies per epoch, the last one, the training images' inference accuracy): the
    two readings of the same images that ``batchnorm_mismatch`` and ``train_mode_gap`` compare;
    None when either is missing."""
    fit_accuracy = series(history, "accuracy")
    inference = accuracy(summary, "train")
    if not fit_accuracy or not math.isfinite(fit_accuracy[-1]) or inference is None:
        return None
    return fit_accuracy, fit_accuracy[-1], inference


def batchnorm_mismatch(
    history: History, summary: Mapping[str, Any], num_classes: int
) -> Finding | None:
    """``batchnorm_mismatch``: accuracy during ``fit`` high, the same images in inference mode
    far lower.

    ``fit`` normalises each batch with its own statistics; inference uses the moving averages.
    When those do not describe the data (a BatchNorm backbone trained from random weights on a
    small set, or BatchNorm unfrozen carelessly) the model that fitted cannot predict.

    Returns:
        None without a fit accuracy or a training score.
    """
    pair = _fit_and_inference(history, summary)
    if pair is None:
        return None
    fit_accuracy, fit, inference = pair
    drop = fit - inference
    evidence = {
        "fit_accuracy": fit,
        "inference_accuracy": inference,
        "drop": drop,
        "chance": chance(num_classes),
        "accuracy": plain(fit_accuracy),
    }
    measured = f"{fit:.1%} in fit, {inference:.1%} in inference mode"
    expected = f"a fall of at most {BN_MISMATCH_DROP * 100:.0f} points"
    if drop <= BN_MISMATCH_DROP:
        return Finding("batchnorm_mismatch", "ok", measured, expected, NOTHING, evidence)
    advice = (
        "BatchNorm's moving statistics do not describe the data: the model fits batches but "
        "not the same images in inference mode. Use pretrained weights (--weights PATH for a "
        "local weights file, or --weights imagenet where it can be downloaded) with BatchNorm "
        "kept frozen, or re-estimate the statistics on more training images."
    )
    return Finding("batchnorm_mismatch", "fail", measured, expected, advice, evidence)


def train_mode_gap(
    history: History,
    summary: Mapping[str, Any],
    settings: Mapping[str, Any] | None = None,
    phase: str = "head",
) -> Finding | None:
    """``train_mode_gap``: the training images score far better in inference mode than during
    ``fit``: what acts only in training (dropout, augmentation) makes the task the optimizer sees
    much harder than the one the model is judged on. The mirror image of ``batchnorm_mismatch``.

    Returns:
        None without a fit accuracy or a training score.
    """
    pair = _fit_and_inference(history, summary)
    if pair is None:
        return None
    fit_accuracy, fit, inference = pair
    rise = inference - fit
    evidence = {"fit_accuracy": fit, "inference_accuracy": inference, "rise": rise, "phase": phase}
    measured = f"{fit:.1%} in fit, {inference:.1%} in inference mode"
    expected = f"inference at most {TRAIN_MODE_GAP * 100:.0f} points above fit"
    climbing = len(fit_accuracy) >= 2 and abs(fit - fit_accuracy[-2]) > TRAIN_MODE_STABLE
    evidence["still_climbing"] = climbing
    if rise <= TRAIN_MODE_GAP or climbing or len(fit_accuracy) < 2:
        return Finding("train_mode_gap", "ok", measured, expected, NOTHING, evidence)
    dropout = current_value(settings, "dropout")
    action = None
    if isinstance(dropout, int | float) and dropout >= HIGH_DROPOUT:
        action = change(settings, "dropout", "lower")
    augmenting = phase == "finetune" and (settings or {}).get("augment", True)
    knobs = [f"dropout {dropout:g}" if isinstance(dropout, int | float) else "dropout"]
    if augmenting:
        knobs.append("augmentation")
    remedy = (
        f"Lower it: {render(action)}"
        if action
        else "Lower --dropout" + (", or try --no-augment" if augmenting else "")
    )
    advice = (
        f"During fit the model scores {fit:.0%} on its training images, in inference mode "
        f"{inference:.0%}: the regularization that acts only in training ({', '.join(knobs)}) "
        f"makes the optimizer's task much harder than the one the model is judged on, so its "
        f"loss curve says little about the model. {remedy}."
    )
    return Finding("train_mode_gap", "warn", measured, expected, advice, evidence, action)
