"""Diagnoses after a fit: CS231n's reading of loss curves and accuracy gaps, as findings.

Pure functions from an epoch history (``[{"epoch", "loss", "accuracy", "val_loss", ...}]``) and
the run summary (``{"train": {"accuracy", "loss", "images"}, "val": {...}, "gap": ...}``, scored
in inference mode after training) to :class:`Finding`. Each check returns a finding whether the
run is healthy or not, so a report lists every check that ran; it returns ``None`` only when the
data it judges is missing (no validation split: no gap; fewer than 3 epochs: no curve shape).

:func:`diagnose_fit` runs them all and keeps the story consistent: a finding whose numbers are
explained by a deeper failure (a gap caused by validation at chance, a low accuracy caused by
broken BatchNorm statistics or a loss that never moved) is kept with its measurement, capped at
``warn``, loses its action and points at the cause; and at most one finding per hyperparameter
carries an action, so a search never applies the same (or an opposite) change twice.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from itertools import pairwise
from typing import Any

from training.babysit.findings import Finding
from training.babysit.thresholds import (
    BN_MISMATCH_DROP,
    CHANCE_MARGIN,
    CONVERGED_LOSS,
    CURVE_MIN_DROP,
    FAST_DROP_SHARE,
    FLAT_EPOCHS,
    FLAT_RELATIVE_DROP,
    GAP_FAIL,
    GAP_WARN,
    HIGH_PLATEAU_FRACTION,
    LATE_START_EPOCHS,
    NO_GAP,
    NOISE_RATIO,
    STILL_FALLING_DROP,
    TRAIN_LEARNED,
    UNDERFIT_ACCURACY,
)

History = Sequence[Mapping[str, Any]]
PHASES = ("head", "finetune")
"""Phase 1 trains the head on frozen features; phase 2 fine-tunes the top of the backbone."""
CURVE_MIN_EPOCHS = 3
"""A shape needs a start, a middle and an end."""
NOTHING = "Nothing to do."

_PHASE_NAME = {"head": "phase 1 (head)", "finetune": "phase 2 (fine-tune)"}
_LR = {"head": ("lr", "--lr"), "finetune": ("finetune_lr", "--finetune-lr")}
_EPOCHS = {
    "head": ("epochs_head", "--epochs-head"),
    "finetune": ("epochs_finetune", "--epochs-finetune"),
}
_CURVE_STATUS = {
    "healthy": "ok",
    "diverged": "fail",
    "rising": "warn",
    "flat": "warn",
    "late_start": "warn",
    "high_plateau": "warn",
    "noisy": "warn",
    "still_falling": "warn",
}


# -- helpers -----------------------------------------------------------------------------------


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _series(history: History | None, key: str) -> list[float] | None:
    """The values of ``key`` per epoch (NaN where missing), or None if no epoch has it."""
    if not history or not any(key in epoch for epoch in history):
        return None
    return [_float(epoch.get(key)) for epoch in history]


def _plain(values: Sequence[float]) -> list[float | None]:
    """JSON-safe series for plotting: non-finite values become gaps (None)."""
    return [round(v, 6) if math.isfinite(v) else None for v in values]


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _check_phase(phase: str) -> None:
    if phase not in PHASES:
        raise ValueError(f"Expected phase to be one of {PHASES}. Received: phase={phase!r}")


def _ln_classes(num_classes: int) -> float:
    return math.log(max(int(num_classes), 2))


def _chance(num_classes: int) -> float:
    return 1.0 / max(int(num_classes), 2)


def _accuracy(summary: Mapping[str, Any] | None, split: str) -> float | None:
    scores = (summary or {}).get(split)
    if not isinstance(scores, Mapping) or "accuracy" not in scores:
        return None
    return _finite(_float(scores["accuracy"]))


def _current_lr(history: History) -> str:
    """The phase's rate as its flag set it: the first epoch's (a schedule decays it later)."""
    rates = [r for r in (_series(history, "lr") or []) if math.isfinite(r)]
    return f" (it is {rates[0]:g})" if rates else ""


# -- the loss curve of one phase ---------------------------------------------------------------


def loss_flat(history: History, num_classes: int, *, phase: str = "head") -> Finding | None:
    """``loss_flat``: the training loss barely moved over the first ``FLAT_EPOCHS`` epochs.

    CS231n: "loss not going down: learning rate too low". A model with nothing trainable gives
    the same picture. A loss already near zero (a converged head going into phase 2) has nothing
    left to fall and passes.

    Args:
        history: The phase's epochs, oldest first.
        num_classes: Number of classes (for ln(C) in the evidence).
        phase: ``"head"`` or ``"finetune"``: picks the flag the advice names.

    Returns:
        None with fewer than ``FLAT_EPOCHS`` epochs, or a non-finite loss among them (that is
        divergence, which ``loss_curve`` reports).
    """
    _check_phase(phase)
    loss = _series(history, "loss")
    if loss is None or len(loss) < FLAT_EPOCHS:
        return None
    window = loss[:FLAT_EPOCHS]
    if not all(math.isfinite(v) for v in window):
        return None
    first, last = window[0], window[-1]
    drop = (first - last) / first if first > 0 else 0.0
    evidence = {
        "phase": phase,
        "loss": _plain(window),
        "relative_drop": drop,
        "ln_classes": _ln_classes(num_classes),
    }
    expected = f"a change of at least {FLAT_RELATIVE_DROP:.0%} over the first {FLAT_EPOCHS} epochs"
    if abs(drop) >= FLAT_RELATIVE_DROP or first < CONVERGED_LOSS:
        return Finding("loss_flat", "ok", round(drop, 4), expected, NOTHING, evidence)
    hyperparameter, flag = _LR[phase]
    if phase == "head":
        advice = (
            f"The training loss barely moved in {_PHASE_NAME[phase]}: the learning rate is "
            f"probably too low{_current_lr(history)}. Raise {flag} by 10×."
        )
    else:
        advice = (
            f"The training loss barely moved in {_PHASE_NAME[phase]}: raise {flag} by 10×"
            f"{_current_lr(history)}, and check that --unfreeze leaves blocks to train."
        )
    return Finding(
        "loss_flat",
        "warn",
        round(drop, 4),
        expected,
        advice,
        evidence,
        {"op": "raise", "hyperparameter": hyperparameter, "factor": 10.0},
    )


def _flat_run(loss: Sequence[float]) -> int:
    """Leading epochs whose loss stays within ``FLAT_RELATIVE_DROP`` of the first epoch's."""
    run = 0
    for value in loss:
        if value < loss[0] * (1 - FLAT_RELATIVE_DROP):
            break
        run += 1
    return run


def _shape(
    loss: list[float], val_loss: list[float] | None, ln_c: float, phase: str
) -> tuple[str, dict[str, Any]]:
    """The curve's shape name and the numbers that decided it (all losses finite)."""
    # Phase 1 starts from a fresh softmax head, whose loss is ln(C) before the first step; an
    # epoch-1 average above that means the start is not known, so the curve starts at epoch 1.
    # Phase 2 starts from a trained head with augmentation switched on: epoch 1 is the start.
    before = phase == "head" and loss[0] <= ln_c
    start = ln_c if before else loss[0]
    series = [start, *loss] if before else loss
    low, end = min(loss), loss[-1]
    fall = start - low
    net = start - end
    ups = sum(max(0.0, b - a) for a, b in pairwise(loss))
    fast_share = (series[0] - series[1]) / fall if fall > 0 else 0.0
    # Wobbles under a tenth of ln(C) are not worth acting on, however small the net fall (a
    # phase 2 that starts from a trained head has little left to fall).
    floor = CURVE_MIN_DROP * ln_c
    noise = ups / max(net, floor)
    last_drop = (loss[-2] - end) / loss[-2] if loss[-2] > 0 else 0.0
    flat_run = _flat_run(loss)
    numbers: dict[str, Any] = {
        "start": start,
        "relative_fall": fall / start if start > 0 else 0.0,
        "fast_drop_share": fast_share,
        "noise_ratio": noise,
        "flat_epochs": flat_run,
        "last_drop": last_drop,
    }
    val_improving = True
    if val_loss and len(val_loss) >= 2 and all(math.isfinite(v) for v in val_loss[-2:]):
        val_improving = val_loss[-1] < val_loss[-2]
        numbers["val_improving"] = val_improving
    if max(loss) < CONVERGED_LOSS:
        return "healthy", numbers
    if end >= start * (1 + CURVE_MIN_DROP):
        return "rising", numbers
    if fall < CURVE_MIN_DROP * start and low >= CONVERGED_LOSS:
        return "flat", numbers
    if (
        loss[0] >= (1 - CURVE_MIN_DROP) * ln_c
        and LATE_START_EPOCHS <= flat_run < len(loss)
        and fall >= CURVE_MIN_DROP * start
    ):
        return "late_start", numbers
    if fast_share >= FAST_DROP_SHARE and low > HIGH_PLATEAU_FRACTION * ln_c:
        return "high_plateau", numbers
    if noise > NOISE_RATIO:
        return "noisy", numbers
    if (
        last_drop > STILL_FALLING_DROP
        and loss[-3] > loss[-2]
        and end >= CONVERGED_LOSS
        and val_improving
    ):
        return "still_falling", numbers
    return "healthy", numbers


def _curve_advice(shape: str, phase: str, numbers: dict[str, Any], history: History):
    """(advice, action) for a shape."""
    hyperparameter, flag = _LR[phase]
    epochs_field, epochs_flag = _EPOCHS[phase]
    where = _PHASE_NAME[phase]
    rate = _current_lr(history)
    if shape == "diverged":
        return (
            f"The loss turned NaN/inf in {where}: the learning rate is far too high{rate}. "
            f"Lower {flag} by 10×.",
            {"op": "lower", "hyperparameter": hyperparameter, "factor": 10.0},
        )
    if shape == "rising":
        return (
            f"The training loss ended higher than it started in {where}: the learning rate is "
            f"too high{rate}. Lower {flag} by 3×.",
            {"op": "lower", "hyperparameter": hyperparameter, "factor": 3.0},
        )
    if shape == "flat":
        return (
            f"The training loss never fell {CURVE_MIN_DROP:.0%} in {where}: the learning rate is "
            f"too low{rate} or nothing is trainable. Raise {flag} by 10×.",
            {"op": "raise", "hyperparameter": hyperparameter, "factor": 10.0},
        )
    if shape == "late_start":
        return (
            f"The loss sat flat for {numbers['flat_epochs']} epochs in {where} before falling, "
            f"the mark of a bad initialisation: run `python -m training check` to test the "
            f"initial loss; if it passes, raise {flag} by 3×.",
            None,
        )
    if shape == "high_plateau":
        return (
            f"The loss dropped at once in {where}, then stalled well above zero: the learning "
            f"rate is probably too high{rate}. Lower {flag} by 3× (if the plateau stays, the "
            f"model lacks capacity or --l2 holds the loss up).",
            {"op": "lower", "hyperparameter": hyperparameter, "factor": 3.0},
        )
    if shape == "noisy":
        return (
            f"The loss jumps up and down in {where}: the steps are too large for the gradient's "
            f"noise. Lower {flag} by 3× or raise --batch-size.",
            {"op": "lower", "hyperparameter": hyperparameter, "factor": 3.0},
        )
    if shape == "still_falling":
        return (
            f"The loss (and the validation loss) still fell {numbers['last_drop']:.0%} in the "
            f"last epoch of {where}: training stopped too early. Double {epochs_flag}.",
            {"op": "train_longer", "hyperparameter": epochs_field, "factor": 2.0},
        )
    return "Nothing to do: the loss fell and levelled off.", None


def loss_curve(history: History, num_classes: int, *, phase: str = "head") -> Finding | None:
    """``loss_curve``: the shape of one phase's training loss, as CS231n reads it.

    Shapes, checked in this order (``measured`` is the name):

    - ``diverged`` (fail): a NaN/inf loss; the rate is far too high.
    - ``healthy`` at once when the loss stays under ``CONVERGED_LOSS``: nothing left to judge.
    - ``rising``: the loss ends ``CURVE_MIN_DROP`` above its start; the rate is too high.
    - ``flat``: it never fell ``CURVE_MIN_DROP`` below its start (and is not near zero).
    - ``late_start``: starts near ln(C) (untrained), stays flat ``LATE_START_EPOCHS``+ epochs,
      then falls: bad initialisation.
    - ``high_plateau``: the first step did ``FAST_DROP_SHARE`` of the fall, and the loss stays
      above ``HIGH_PLATEAU_FRACTION`` · ln(C): too high a rate.
    - ``noisy``: epoch-to-epoch rises, summed, over the net fall (at least
      ``CURVE_MIN_DROP`` · ln(C)) above ``NOISE_RATIO``: small batch or high rate.
    - ``still_falling``: the last two epochs fell, the last by over ``STILL_FALLING_DROP``, the
      loss is not yet near zero and the validation loss (if any) still improves: train longer.
    - ``healthy`` (ok): it fell and levelled off.

    Phase 1 is measured from ln(C), a fresh head's loss before the first step; phase 2 from its
    first epoch (its head is trained, and augmentation raises its loss, so phase 1's end is no
    reference).

    Args:
        history: The phase's epochs, oldest first.
        num_classes: Number of classes (ln(C) is the reference for the start and plateaus).
        phase: ``"head"`` or ``"finetune"``.

    Returns:
        None with fewer than 3 epochs.
    """
    _check_phase(phase)
    loss = _series(history, "loss")
    if loss is None or len(loss) < CURVE_MIN_EPOCHS:
        return None
    ln_c = _ln_classes(num_classes)
    val_loss = _series(history, "val_loss")
    evidence: dict[str, Any] = {
        "phase": phase,
        "epochs": [int(_float(e.get("epoch", i + 1))) for i, e in enumerate(history)],
        "loss": _plain(loss),
        "ln_classes": ln_c,
    }
    if val_loss is not None:
        evidence["val_loss"] = _plain(val_loss)
    bad = [evidence["epochs"][i] for i, v in enumerate(loss) if not math.isfinite(v)]
    if bad:
        shape, numbers = "diverged", {"non_finite_epochs": bad}
    else:
        shape, numbers = _shape(loss, val_loss, ln_c, phase)
    evidence.update(numbers)
    advice, action = _curve_advice(shape, phase, numbers, history)
    return Finding(
        "loss_curve",
        _CURVE_STATUS[shape],
        shape,
        "healthy: falls, then levels off",
        advice,
        evidence,
        action,
    )


# -- the scores after training -----------------------------------------------------------------


def generalization_gap(summary: Mapping[str, Any], l2: float = 0.0) -> Finding | None:
    """``generalization_gap``: training minus validation accuracy (CS231n: "big gap =
    overfitting, increase regularization").

    Args:
        summary: The run summary (inference-mode scores per split, optional ``gap``).
        l2: The run's L2 strength, so the advice can name a concrete new value.

    Returns:
        None without a train and a val score.
    """
    train, val = _accuracy(summary, "train"), _accuracy(summary, "val")
    if train is None or val is None:
        return None
    gap = _float(summary.get("gap", train - val))
    if not math.isfinite(gap):
        gap = train - val
    evidence = {"train_accuracy": train, "val_accuracy": val, "gap": gap}
    for split in ("train", "val"):
        loss = _float((summary.get(split) or {}).get("loss"))
        if math.isfinite(loss):
            evidence[f"{split}_loss"] = loss
    expected = f"≤ {GAP_WARN:g}"
    if gap <= GAP_WARN:
        return Finding("generalization_gap", "ok", round(gap, 4), expected, NOTHING, evidence)
    status = "fail" if gap > GAP_FAIL else "warn"
    stronger = "set --l2 1e-4" if l2 <= 0 else f"raise --l2 to {l2 * 10:g}"
    advice = (
        f"Training accuracy {train:.0%} against validation {val:.0%}: the model memorises its "
        f"training images (overfitting). Regularize: {stronger}, raise --dropout, keep "
        f"augmentation on (no --no-augment), --unfreeze fewer blocks, or add images."
    )
    return Finding(
        "generalization_gap",
        status,
        round(gap, 4),
        expected,
        advice,
        evidence,
        {"op": "raise", "hyperparameter": "l2", "factor": 10.0},
    )


def underfitting(summary: Mapping[str, Any], num_classes: int, l2: float = 0.0) -> Finding | None:
    """``underfitting``: low training accuracy and no gap (CS231n: "no gap, increase model
    capacity").

    Low means below chance + ``UNDERFIT_ACCURACY`` of the way to 100%. Without a validation
    score the training accuracy alone decides (a model cannot overfit what it does not fit).

    Args:
        summary: The run summary.
        num_classes: Number of classes (chance is 1/C).
        l2: The run's L2: when positive, lowering it is the first remedy (and the action).

    Returns:
        None without a training score.
    """
    train = _accuracy(summary, "train")
    if train is None:
        return None
    val = _accuracy(summary, "val")
    gap = None if val is None else train - val
    chance = _chance(num_classes)
    bar = chance + UNDERFIT_ACCURACY * (1 - chance)
    evidence = {
        "train_accuracy": train,
        "val_accuracy": val,
        "gap": gap,
        "chance": chance,
        "threshold": bar,
        "l2": l2,
    }
    expected = f"training accuracy ≥ {bar:.3f} (or a gap ≥ {NO_GAP:g})"
    if train >= bar or (gap is not None and gap >= NO_GAP):
        return Finding("underfitting", "ok", round(train, 4), expected, NOTHING, evidence)
    matched = "validation matches it" if gap is not None else "there is no validation split"
    if l2 > 0:
        advice = (
            f"Training accuracy is only {train:.0%} and {matched}: the model is too constrained "
            f"(underfitting). Lower --l2 to {l2 / 10:g}; if that is not enough, add capacity "
            f"(--head-units 256, --unfreeze more blocks) or train longer."
        )
        action = {"op": "lower", "hyperparameter": "l2", "factor": 10.0}
    else:
        advice = (
            f"Training accuracy is only {train:.0%} and {matched}: the model lacks capacity "
            f"(underfitting). --unfreeze more blocks (with --epochs-finetune > 0), add "
            f"--head-units 256, lower --dropout, or train longer (--epochs-head)."
        )
        action = {"op": "unfreeze_more"}
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
    train, val = _accuracy(summary, "train"), _accuracy(summary, "val")
    if train is None or val is None:
        return None
    chance = _chance(num_classes)
    evidence = {"train_accuracy": train, "val_accuracy": val, "chance": chance}
    expected = (
        f"validation above {chance + CHANCE_MARGIN:.3f} once training reaches "
        f"{chance + TRAIN_LEARNED:.3f}"
    )
    if train < chance + TRAIN_LEARNED or val > chance + CHANCE_MARGIN:
        return Finding("val_at_chance", "ok", round(val, 4), expected, NOTHING, evidence)
    advice = (
        f"Training accuracy is {train:.0%} but validation {val:.0%} is at chance "
        f"({chance:.0%}): the splits disagree. Check that train/ and val/ use the same class "
        f"folder names with the right images in each, that no training image carries a label "
        f"shortcut (a mark, border or text), and that validation is preprocessed the same way."
    )
    return Finding("val_at_chance", "fail", round(val, 4), expected, advice, evidence)


def batchnorm_mismatch(
    history: History, summary: Mapping[str, Any], num_classes: int
) -> Finding | None:
    """``batchnorm_mismatch``: accuracy during ``fit`` high, the same images in inference mode
    far lower.

    ``fit`` normalises each batch with its own statistics; inference uses the moving averages.
    When those do not describe the data (a BatchNorm backbone trained from random weights on a
    small set, or BatchNorm unfrozen carelessly) the model that fitted cannot predict.

    Args:
        history: The last phase's epochs (its last ``accuracy`` is the fit accuracy).
        summary: The run summary (``train.accuracy`` is the same images in inference mode).
        num_classes: Number of classes (chance, for the evidence).

    Returns:
        None without a fit accuracy or a training score.
    """
    accuracy = _series(history, "accuracy")
    inference = _accuracy(summary, "train")
    if not accuracy or not math.isfinite(accuracy[-1]) or inference is None:
        return None
    fit = accuracy[-1]
    drop = fit - inference
    evidence = {
        "fit_accuracy": fit,
        "inference_accuracy": inference,
        "drop": drop,
        "chance": _chance(num_classes),
        "accuracy": _plain(accuracy),
    }
    measured = f"{fit:.1%} in fit, {inference:.1%} in inference mode"
    expected = f"a fall of at most {BN_MISMATCH_DROP * 100:.0f} points"
    if drop <= BN_MISMATCH_DROP:
        return Finding("batchnorm_mismatch", "ok", measured, expected, NOTHING, evidence)
    advice = (
        "BatchNorm's moving statistics do not describe the data: the model fits batches but "
        "not the same images in inference mode. Use pretrained weights (--weights imagenet) "
        "with BatchNorm kept frozen, or re-estimate the statistics on more training images."
    )
    return Finding("batchnorm_mismatch", "fail", measured, expected, advice, evidence)


# -- all of them -------------------------------------------------------------------------------


def _explained(finding: Finding | None, cause: Finding, advice: str) -> Finding | None:
    """A finding whose numbers another failure explains: kept, capped at warn, no action."""
    if finding is None or finding.status == "ok":
        return finding
    return dataclasses.replace(
        finding,
        status="warn",
        advice=advice,
        action=None,
        evidence={**finding.evidence, "explained_by": cause.check},
    )


def _one_action_per_hyperparameter(findings: list[Finding]) -> list[Finding]:
    """The first finding to act on a hyperparameter (or op) keeps its action; later ones drop
    theirs, so a search never applies a change twice or two opposite changes."""
    seen: set[tuple[str | None, str | None]] = set()
    out = []
    for finding in findings:
        if finding.action:
            key = (
                finding.action.get("hyperparameter"),
                None if finding.action.get("hyperparameter") else finding.action.get("op"),
            )
            if key in seen:
                finding = dataclasses.replace(finding, action=None)
            else:
                seen.add(key)
        out.append(finding)
    return out


def diagnose_fit(
    histories: Mapping[str, History],
    summary: Mapping[str, Any],
    num_classes: int,
    l2: float = 0.0,
) -> list[Finding]:
    """Every diagnosis of a finished fit, causes before consequences.

    Order: ``loss_flat`` and ``loss_curve`` for phase 1 then phase 2 (``evidence["phase"]``
    says which), then ``batchnorm_mismatch`` (the summary against the last phase's history),
    ``val_at_chance``, ``generalization_gap`` and ``underfitting``.

    Contradictions are resolved, keeping every measurement:

    - ``val_at_chance`` failing explains ``generalization_gap``: the gap is a split mismatch,
      not overfitting, and raising L2 would not help.
    - ``batchnorm_mismatch`` failing explains ``generalization_gap`` and ``underfitting``: the
      inference-mode scores they read are distorted.
    - every phase's curve ``flat`` explains ``underfitting``: the rate, not capacity, is wrong.
    - a ``late_start`` curve explains its phase's ``loss_flat``: the loss did fall later.

    An explained finding is capped at ``warn``, loses its action, names its cause in
    ``evidence["explained_by"]`` and says so in its advice. Then at most one finding per
    hyperparameter keeps an action.

    Args:
        histories: ``{"head": [...], "finetune": [...]}``; either may be absent or empty.
        summary: Inference-mode scores after training (``train``, ``val``, ``test``, ``gap``).
        num_classes: Number of classes.
        l2: The run's L2 strength (advice names a concrete value; ``underfitting`` lowers it).

    Returns:
        The findings of the checks that had data to judge.
    """
    histories = histories or {}
    findings: list[Finding | None] = []
    curves: list[Finding] = []
    last: History = []
    for phase in PHASES:
        history = histories.get(phase) or []
        if not history:
            continue
        last = history
        flat = loss_flat(history, num_classes, phase=phase)
        curve = loss_curve(history, num_classes, phase=phase)
        if curve is not None:
            curves.append(curve)
            if curve.measured == "late_start":
                flat = _explained(
                    flat,
                    curve,
                    "The loss did fall later (a late start, see loss_curve): test the "
                    "initialisation before raising the rate.",
                )
        findings += [flat, curve]

    bn = batchnorm_mismatch(last, summary, num_classes) if last else None
    chance = val_at_chance(summary, num_classes)
    gap = generalization_gap(summary, l2=l2)
    under = underfitting(summary, num_classes, l2=l2)
    if bn is not None and bn.status == "fail":
        distorted = (
            "Inference-mode accuracy is distorted by BatchNorm statistics (see "
            "batchnorm_mismatch): fix that first; this number will change."
        )
        gap = _explained(gap, bn, distorted)
        under = _explained(under, bn, distorted)
    if chance is not None and chance.status == "fail":
        gap = _explained(
            gap,
            chance,
            "The gap comes from validation at chance (see val_at_chance), not from ordinary "
            "overfitting: fix the splits first; more regularization will not close it.",
        )
    if curves and all(c.measured == "flat" for c in curves):
        under = _explained(
            under,
            curves[0],
            "The training loss never fell (see loss_curve): fix the learning rate before "
            "adding capacity.",
        )
    findings += [bn, chance, gap, under]
    return _one_action_per_hyperparameter([f for f in findings if f is not None])
