"""The loss curve of one phase, read as CS231n reads it: flat, rising, noisy, plateaued, falling.

Pure functions from a phase's epoch history to :class:`Finding`. They judge the data loss (the
cross-entropy; see :func:`training.babysit.history.data_loss`) and start every proposed change
from the run's own value (:mod:`training.babysit.advice`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from itertools import pairwise
from typing import Any

from training.babysit.advice import change, flag, render
from training.babysit.findings import Finding
from training.babysit.history import (
    EPOCHS_PARAM,
    LR_PARAM,
    NOTHING,
    PHASE_NAME,
    History,
    as_float,
    check_phase,
    data_loss,
    ln_classes,
    phase_settings,
    plain,
    series,
)
from training.babysit.thresholds import (
    CONVERGED_LOSS,
    CURVE_MIN_DROP,
    FAST_DROP_SHARE,
    FLAT_EPOCHS,
    FLAT_RELATIVE_DROP,
    HIGH_PLATEAU_FRACTION,
    L2_CRUSHED,
    L2_HOLDS_SHARE,
    LATE_START_EPOCHS,
    NOISE_RATIO,
    NOISE_Z,
    SLOW_FALL,
    STILL_FALLING_DROP,
)

CURVE_MIN_EPOCHS = 3
"""A shape needs a start, a middle and an end."""
_CURVE_STATUS = {
    "healthy": "ok",
    "diverged": "fail",
    "rising": "warn",
    "flat": "warn",
    "late_start": "warn",
    "high_plateau": "warn",
    "noisy": "warn",
    "still_falling": "warn",
    "held_by_l2": "warn",
}


def _penalty_fell_more(history: History, data: list[float]) -> bool:
    """The L2 penalty (Keras' loss minus the data loss) fell by more than the data loss did, and
    by a tenth of the data loss's start or more: the optimizer spent the phase shrinking weights
    against L2 rather than fitting the data. A sane L2 keeps the penalty a small fraction of the
    loss, and without L2 there is no penalty to fall."""
    total = series(history, "loss")
    if not total or len(total) != len(data) or series(history, "data_loss") is None:
        return False
    if not all(math.isfinite(v) for v in (*total, *data)) or data[0] <= 0:
        return False
    penalty_fall = (total[0] - data[0]) - (total[-1] - data[-1])
    data_fall = data[0] - min(data)
    return penalty_fall > data_fall and penalty_fall >= CURVE_MIN_DROP * data[0]


def _penalty_share(history: History) -> float:
    """The L2 penalty's share of the last epoch's loss (0 when the fit logged no data loss)."""
    total, data = series(history, "loss"), series(history, "data_loss")
    if not total or not data or not math.isfinite(total[-1]) or total[-1] <= 0:
        return 0.0
    share = (total[-1] - data[-1]) / total[-1]
    return share if math.isfinite(share) else 0.0


def _weights_crushed(history: History) -> bool:
    """The L2-regularized weights ended under ``L2_CRUSHED`` of their size at the phase start."""
    start = as_float((history[0] if history else {}).get("l2_weights_start"))
    end = series(history, "l2_weights")
    if not end or not math.isfinite(start) or start <= 0 or not math.isfinite(end[-1]):
        return False
    return end[-1] < L2_CRUSHED * start


def _held_by_l2(history: History, data: list[float]) -> bool:
    return (
        _penalty_fell_more(history, data)
        or _penalty_share(history) >= L2_HOLDS_SHARE
        or _weights_crushed(history)
    )


def _rate_change(settings, phase: str, op: str, factor: float):
    """(action, text): the learning-rate move from the run's rate, and how to say it."""
    param = LR_PARAM[phase]
    action = change(settings, param, op, factor)
    name = flag(param)
    current = settings.get(param)
    verb = "Raise" if op == "raise" else "Lower"
    if action is None:
        if current is None:
            return None, f"{verb} {name} by {factor:g}×"
        edge = "highest" if op == "raise" else "lowest"
        return None, f"{name} {current:g} is already the {edge} rate worth trying"
    return action, f"{verb} {name} {factor:g}×, from {current:g}: {render(action)}"


def _l2_change(settings):
    """(action, text): L2 lowered 10× from the run's value."""
    action = change(settings, "l2", "lower", 10.0)
    if action is None:
        return None, "Lower --l2"
    return action, f"--l2 is too strong: lower it from {action['from']:g}: {render(action)}"


def _frozen(phase: str, evidence: dict[str, Any]) -> Finding:
    return Finding(
        "loss_flat",
        "fail",
        0.0,
        "trainable weights in the phase",
        f"Nothing is trainable in {PHASE_NAME[phase]}: the loss cannot move at any learning "
        f"rate. The head (or the unfrozen blocks) must be trainable; with --epochs-finetune, "
        f"give --unfreeze at least 1.",
        {**evidence, "trainable_parameters": 0},
    )


def loss_flat(
    history: History,
    num_classes: int,
    *,
    phase: str = "head",
    settings: Mapping[str, Any] | None = None,
    trainable: int | None = None,
) -> Finding | None:
    """``loss_flat``: the data loss barely moved over the first ``FLAT_EPOCHS`` epochs.

    CS231n: "loss not going down: learning rate too low". A phase with nothing trainable gives
    the same picture: when ``trainable`` is 0 the finding fails and says so instead of blaming
    the rate. A loss already near zero (a converged head going into phase 2) passes.

    Returns:
        None with fewer than ``FLAT_EPOCHS`` epochs, or a non-finite loss among them (that is
        divergence, which ``loss_curve`` reports).
    """
    check_phase(phase)
    loss = data_loss(history)
    if loss is None or len(loss) < FLAT_EPOCHS:
        return None
    window = loss[:FLAT_EPOCHS]
    if not all(math.isfinite(v) for v in window):
        return None
    first, last = window[0], window[-1]
    drop = (first - last) / first if first > 0 else 0.0
    evidence = {
        "phase": phase,
        "loss": plain(window),
        "relative_drop": drop,
        "ln_classes": ln_classes(num_classes),
    }
    expected = f"a change of at least {FLAT_RELATIVE_DROP:.0%} over the first {FLAT_EPOCHS} epochs"
    if trainable == 0:  # first: dropout alone moves a frozen head's epoch loss by 1% or more
        return _frozen(phase, evidence)
    if abs(drop) >= FLAT_RELATIVE_DROP or first < CONVERGED_LOSS:
        return Finding("loss_flat", "ok", round(drop, 4), expected, NOTHING, evidence)
    settings = phase_settings(settings, history, phase)
    if _held_by_l2(history, loss):
        action, text = _l2_change(settings)
        advice = (
            f"The data loss barely moved in {PHASE_NAME[phase]} while the L2 penalty fell: the "
            f"optimizer spends its steps shrinking weights, not fitting the data. {text}."
        )
        return Finding("loss_flat", "warn", round(drop, 4), expected, advice, evidence, action)
    action, text = _rate_change(settings, phase, "raise", 10.0)
    advice = (
        f"The training loss barely moved in {PHASE_NAME[phase]}: the learning rate is probably "
        f"too low. {text}."
    )
    if phase == "finetune":
        advice += " Check too that --unfreeze leaves blocks to train."
    return Finding("loss_flat", "warn", round(drop, 4), expected, advice, evidence, action)


def _flat_run(loss: Sequence[float]) -> int:
    """Leading epochs whose loss stays within ``FLAT_RELATIVE_DROP`` of the first epoch's."""
    run = 0
    for value in loss:
        if value < loss[0] * (1 - FLAT_RELATIVE_DROP):
            break
        run += 1
    return run


def _sampling_examples(settings: Mapping[str, Any] | None, batches_per_epoch: Any) -> int | None:
    """Examples behind one epoch's mean loss (batch size × batches), or None when either is
    unknown."""
    batch = as_float((settings or {}).get("batch_size"))
    batches = as_float(batches_per_epoch)
    if not (math.isfinite(batch) and math.isfinite(batches) and batch >= 1 and batches >= 1):
        return None
    return int(batch) * int(batches)


def _rises(loss: list[float], examples: int | None) -> tuple[float, list[float]]:
    """(rises, allowances): the epoch-to-epoch rises summed, less the sampling noise each may be.

    An epoch's mean of ``examples`` per-example losses, each spread about as widely as the mean
    ``L`` itself, has a standard error of about ``L/√examples`` (the model is argued at
    ``NOISE_Z``); a rise counts only beyond ``NOISE_Z`` standard errors of the difference of two
    such means. Without ``examples`` every rise counts in full.
    """
    total, allowances = 0.0, []
    for a, b in pairwise(loss):
        allow = 0.0
        if examples:
            allow = NOISE_Z * math.sqrt((a * a + b * b) / examples)
        allowances.append(allow)
        total += max(0.0, b - a - allow)
    return total, allowances


def _shape(
    loss: list[float],
    val_loss: list[float] | None,
    ln_c: float,
    phase: str,
    examples: int | None = None,
) -> tuple[str, dict[str, Any]]:
    """The curve's shape name and the numbers that decided it (all losses finite).

    ``examples`` (batch size × batches per epoch) sets the sampling noise a rise must beat to
    count towards "noisy"; without it every rise counts.
    """
    # Phase 1 starts from a fresh softmax head, whose loss is ln(C) before the first step; an
    # epoch-1 average above that means the start is not known, so the curve starts at epoch 1.
    # Phase 2 starts from a trained head with augmentation switched on: epoch 1 is the start.
    before = phase == "head" and loss[0] <= ln_c
    start = ln_c if before else loss[0]
    curve = [start, *loss] if before else loss
    low, end = min(loss), loss[-1]
    fall = start - low
    net = start - end
    ups, allowances = _rises(loss, examples)
    fast_share = (curve[0] - curve[1]) / fall if fall > 0 else 0.0
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
    if examples:
        numbers["sampling_examples"] = examples
        numbers["noise_allowance"] = max(allowances)
    val_improving = True
    if val_loss and len(val_loss) >= 2 and all(math.isfinite(v) for v in val_loss[-2:]):
        val_improving = val_loss[-1] < val_loss[-2]
        numbers["val_improving"] = val_improving
    if max(loss) < CONVERGED_LOSS:
        return "healthy", numbers
    if end >= start * (1 + CURVE_MIN_DROP):
        return "rising", numbers
    steady = all(b < a for a, b in pairwise(loss[-3:])) and last_drop >= SLOW_FALL
    if fall < CURVE_MIN_DROP * start and low >= CONVERGED_LOSS and not steady:
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
    falling = last_drop > STILL_FALLING_DROP or (steady and fall < CURVE_MIN_DROP * start)
    if falling and loss[-3] > loss[-2] and end >= CONVERGED_LOSS and val_improving:
        return "still_falling", numbers
    return "healthy", numbers


def _curve_advice(shape: str, phase: str, numbers: dict[str, Any], settings: dict[str, Any]):
    """(advice, action) for a shape."""
    where = PHASE_NAME[phase]
    if shape == "diverged":
        action, text = _rate_change(settings, phase, "lower", 10.0)
        return (
            f"The loss turned NaN/inf in {where}: the learning rate is far too high. {text}.",
            action,
        )
    if shape == "rising":
        action, text = _rate_change(settings, phase, "lower", 3.0)
        return (
            f"The training loss ended higher than it started in {where}: the learning rate is "
            f"too high. {text}.",
            action,
        )
    if shape == "held_by_l2":
        action, text = _l2_change(settings)
        return (
            f"The data loss stalled in {where} while L2 shrank the weights it acts on (or made up "
            f"much of the loss): L2, not the learning rate, holds it up. {text}.",
            action,
        )
    if shape == "flat":
        action, text = _rate_change(settings, phase, "raise", 10.0)
        return (
            f"The training loss never fell {CURVE_MIN_DROP:.0%} in {where}: the learning rate is "
            f"too low or nothing is trainable. {text}.",
            action,
        )
    if shape == "late_start":
        return (
            f"The loss sat flat for {numbers['flat_epochs']} epochs in {where} before falling, "
            f"the mark of a bad initialisation: run `python -m training check` to test the "
            f"initial loss; if it passes, raise {flag(LR_PARAM[phase])} by 3×.",
            None,
        )
    if shape == "high_plateau":
        action, text = _rate_change(settings, phase, "lower", 3.0)
        return (
            f"The loss dropped at once in {where}, then stalled well above zero: the learning "
            f"rate is probably too high. {text} (if the plateau stays, the model lacks capacity "
            f"or --l2 holds the loss up).",
            action,
        )
    if shape == "noisy":
        action, text = _rate_change(settings, phase, "lower", 3.0)
        return (
            f"The loss jumps up and down in {where}: the steps are too large for the gradient's "
            f"noise. {text}, or raise --batch-size.",
            action,
        )
    if shape == "still_falling":
        param = EPOCHS_PARAM[phase]
        action = change(settings, param, "raise", 2.0)
        more = f"Train longer: {render(action)}" if action else f"Double {flag(param)}"
        if numbers["relative_fall"] < CURVE_MIN_DROP:
            more += f" (if it stays slow, raise {flag(LR_PARAM[phase])})"
        return (
            f"The loss (and the validation loss) still fell {numbers['last_drop']:.0%} in the "
            f"last epoch of {where}: training stopped too early. {more}.",
            action,
        )
    return "Nothing to do: the loss fell and levelled off.", None


def loss_curve(
    history: History,
    num_classes: int,
    *,
    phase: str = "head",
    settings: Mapping[str, Any] | None = None,
    batches_per_epoch: int | None = None,
) -> Finding | None:
    """``loss_curve``: the shape of one phase's data loss, as CS231n reads it.

    Shapes, checked in this order (``measured`` is the name):

    - ``diverged`` (fail): a NaN/inf loss; the rate is far too high.
    - ``healthy`` at once when the loss stays under ``CONVERGED_LOSS``: nothing left to judge.
    - ``rising``: the loss ends ``CURVE_MIN_DROP`` above its start; the rate is too high.
    - ``flat``: it never fell ``CURVE_MIN_DROP`` below its start (and is not near zero).
    - ``held_by_l2``: flat or plateaued while the L2 penalty fell more than the data loss did,
      while the penalty is ``L2_HOLDS_SHARE`` of the loss or more, or while L2 crushed the
      weights it acts on to under ``L2_CRUSHED`` of their start (Σw²): L2 is too strong, not
      the rate too low or too high.
    - ``late_start``: starts near ln(C) (untrained), stays flat ``LATE_START_EPOCHS``+ epochs,
      then falls: bad initialisation.
    - ``high_plateau``: the first step did ``FAST_DROP_SHARE`` of the fall, and the loss stays
      above ``HIGH_PLATEAU_FRACTION`` · ln(C): too high a rate.
    - ``noisy``: epoch-to-epoch rises, summed, over the net fall (at least
      ``CURVE_MIN_DROP`` · ln(C)) above ``NOISE_RATIO``: small batch or high rate. With
      ``batches_per_epoch`` and ``settings["batch_size"]``, only the part of each rise beyond
      what sampling explains counts: an epoch's loss averages ``b·n`` per-example losses, whose
      spread is modelled as their mean ``L`` (nothing in the history measures it), so it
      wobbles by about ``L/√(b·n)``; a rise counts beyond ``NOISE_Z`` standard errors of the
      difference of two epochs. Few batches (a small dataset) wobble more, so a healthy small
      run is not called noisy, while a rate far too high still is on any dataset.
    - ``still_falling``: the last two epochs fell, the last by over ``STILL_FALLING_DROP`` (or,
      before the loss fell ``CURVE_MIN_DROP`` in all, steadily by ``SLOW_FALL`` an epoch or
      more), the loss is not yet near zero and the validation loss (if any) still improves:
      train longer.
    - ``healthy`` (ok): it fell and levelled off.

    Phase 1 is measured from ln(C), a fresh head's loss before the first step; phase 2 from its
    first epoch (its head is trained, and augmentation raises its loss, so phase 1's end is no
    reference).

    The validation loss only decides ``still_falling`` (a last epoch that did not improve it
    silences the warning) and is left as measured: it is scored on the same images in inference
    mode every epoch, so its epoch-to-epoch change is the model's, not a fresh sample's.

    Returns:
        None with fewer than 3 epochs.
    """
    check_phase(phase)
    loss = data_loss(history)
    if loss is None or len(loss) < CURVE_MIN_EPOCHS:
        return None
    ln_c = ln_classes(num_classes)
    val_loss = data_loss(history, "val_")
    evidence: dict[str, Any] = {
        "phase": phase,
        "epochs": [int(as_float(e.get("epoch", i + 1))) for i, e in enumerate(history)],
        "loss": plain(loss),
        "ln_classes": ln_c,
    }
    if val_loss is not None:
        evidence["val_loss"] = plain(val_loss)
    bad = [evidence["epochs"][i] for i, v in enumerate(loss) if not math.isfinite(v)]
    if bad:
        shape, numbers = "diverged", {"non_finite_epochs": bad}
    else:
        examples = _sampling_examples(settings, batches_per_epoch)
        shape, numbers = _shape(loss, val_loss, ln_c, phase, examples)
        if shape in ("flat", "high_plateau") and _held_by_l2(history, loss):
            shape = "held_by_l2"
        numbers["penalty_share"] = _penalty_share(history)
    evidence.update(numbers)
    advice, action = _curve_advice(shape, phase, numbers, phase_settings(settings, history, phase))
    return Finding(
        "loss_curve",
        _CURVE_STATUS[shape],
        shape,
        "healthy: falls, then levels off",
        advice,
        evidence,
        action,
    )
