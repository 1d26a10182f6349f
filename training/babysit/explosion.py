"""Stop a fit whose loss explodes, and say so as a finding instead of a crash or wasted epochs.

CS231n: "if the cost is ever > 3 * original cost, break out early". The original cost is the
run's first training loss, at least ln(classes): phase 2 starts from a trained head whose loss is
far below ln(C), and a normal fine-tuning wobble must not count as an explosion.

The cost judged is the data loss (the ``data_loss`` metric the fit logs: cross-entropy alone).
Keras' ``loss`` adds the L2 penalty, which can be many times ln(C) at the start with a strong
L2 and then falls as the weights shrink; the penalty is reported beside the data loss.
"""

from __future__ import annotations

import math

import keras

from training.babysit.advice import change, flag, render
from training.babysit.findings import Finding
from training.babysit.thresholds import EXPLOSION_FACTOR

MIN_BATCHES = 5
"""The running loss of an epoch is judged from its 5th batch on: Adam's first steps on large
features can spike for a batch or two and recover, and one noisy batch is not an explosion."""


class LossExplosionStop(keras.callbacks.Callback):
    """Watches the running training loss of every batch; one instance spans both phases.

    Set ``phase`` before each ``fit``. After a stop, ``record`` says where and at what rate.
    """

    def __init__(
        self, num_classes: int, factor: float = EXPLOSION_FACTOR, settings: dict | None = None
    ):
        super().__init__()
        self.settings = settings or {}
        self.factor = factor
        self.floor = math.log(max(num_classes, 2))
        self.phase = "head"
        self.reference: float | None = None
        self.peak_ratio = 0.0
        self.reference_penalty: float | None = None
        self.record: dict | None = None
        self._epoch = 0

    @property
    def exploded(self) -> bool:
        return self.record is not None

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch + 1

    def on_train_batch_end(self, batch, logs=None):
        self._judge(batch, logs, final=False)

    def on_epoch_end(self, epoch, logs=None):
        if self.record is None:  # short epochs are judged on their whole mean
            self._judge(-1, logs, final=True)

    def _judge(self, batch: int, logs, final: bool) -> None:
        logs = logs or {}
        loss = logs.get("data_loss", logs.get("loss"))
        if loss is None:
            return
        loss = float(loss)
        if self.reference is None and math.isfinite(loss):
            self.reference = max(loss, self.floor)
            self.reference_penalty = _penalty(logs)
        reference = self.reference or self.floor
        ratio = loss / reference if math.isfinite(loss) else math.inf
        if not final and batch + 1 < MIN_BATCHES and math.isfinite(loss):
            return  # NaN stops at once; a finite spike must persist over a few batches
        self.peak_ratio = max(self.peak_ratio, ratio)
        if ratio > self.factor:
            self.record = {
                "phase": self.phase,
                "epoch": self._epoch,
                "batch": batch + 1 if batch >= 0 else "end",
                "loss": loss,
                "penalty": _penalty(logs),
                "reference": reference,
                "reference_penalty": self.reference_penalty,
                "learning_rate": _learning_rate(self.model),
            }
            self.model.stop_training = True

    def finding(self) -> Finding:
        """``loss_explosion``: fail with where it happened, or ok with the peak ratio seen."""
        penalty = self.reference_penalty
        expected = (
            f"data loss below {self.factor:g}x the initial {self.reference or 0:.3f} (≈ ln(C) = "
            f"{self.floor:.3f} for a fresh head)"
            + (f"; L2 penalty {penalty:.3g} on top, not judged" if penalty else "")
        )
        if self.record is None:
            return Finding(
                "loss_explosion",
                "ok",
                measured=f"peak {self.peak_ratio:.2f}x the initial data loss",
                expected=expected,
                advice="Nothing to do.",
                evidence={
                    "peak_ratio": self.peak_ratio,
                    "reference": self.reference,
                    "reference_penalty": penalty,
                },
            )
        r = self.record
        what = "turned NaN/inf" if not math.isfinite(r["loss"]) else f"reached {r['loss']:.3g}"
        if r.get("penalty"):
            what += f" (L2 penalty {r['penalty']:.3g} on top)"
        param = "finetune_lr" if r["phase"] == "finetune" else "lr"
        current = self.settings.get(param, r["learning_rate"])
        action = change({**self.settings, param: current}, param, "lower", 10.0)
        proposal = f": {render(action)}" if action else f" by 10x (to {current / 10:.3g})"
        return Finding(
            "loss_explosion",
            "fail",
            measured=f"data loss {what} at epoch {r['epoch']}, batch {r['batch']} of the "
            f"{r['phase']} phase (learning rate {r['learning_rate']:.3g})",
            expected=expected,
            advice=f"The learning rate is too high: lower {flag(param)}{proposal}, or run "
            "`python -m training check` to find the range.",
            evidence=dict(r),
            action=action,
        )


def _penalty(logs) -> float | None:
    """Keras' loss minus the cross-entropy: the regularization penalty, when both are logged."""
    if "data_loss" not in logs or "loss" not in logs:
        return None
    penalty = float(logs["loss"]) - float(logs["data_loss"])
    return penalty if math.isfinite(penalty) else None


def _learning_rate(model) -> float:
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
        return float("nan")
    return float(keras.ops.convert_to_numpy(optimizer.learning_rate))
