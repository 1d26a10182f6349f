"""Reading a fit's epoch history and run summary: the small helpers every diagnosis shares.

A history is ``[{"epoch", "loss", "data_loss", "accuracy", "val_loss", "lr", ...}]`` as the run
logger writes it; a summary is ``{"train": {"accuracy", "loss", "images"}, "val": {...}, "gap"}``,
scored in inference mode after training. ``settings`` is the run's config (``TrainConfig``
fields), so advice can start from the run's own values.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

History = Sequence[Mapping[str, Any]]
PHASES = ("head", "finetune")
"""Phase 1 trains the head on frozen features; phase 2 fine-tunes the top of the backbone."""
NOTHING = "Nothing to do."
PHASE_NAME = {"head": "phase 1 (head)", "finetune": "phase 2 (fine-tune)"}
LR_PARAM = {"head": "lr", "finetune": "finetune_lr"}
EPOCHS_PARAM = {"head": "epochs_head", "finetune": "epochs_finetune"}


def as_float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def series(history: History | None, key: str) -> list[float] | None:
    """The values of ``key`` per epoch (NaN where missing), or None if no epoch has it."""
    if not history or not any(key in epoch for epoch in history):
        return None
    return [as_float(epoch.get(key)) for epoch in history]


def data_loss(history: History | None, prefix: str = "") -> list[float] | None:
    """The cross-entropy per epoch: ``data_loss`` where the fit logged it, else ``loss``.

    Keras' ``loss`` adds the L2 penalty, which falls as weights shrink whether or not the model
    learns anything; the curves are judged on the data term so a strong L2 is not read as
    learning (the penalty is the difference).
    """
    return series(history, f"{prefix}data_loss") or series(history, f"{prefix}loss")


def plain(values: Sequence[float]) -> list[float | None]:
    """JSON-safe series for plotting: non-finite values become gaps (None)."""
    return [round(v, 6) if math.isfinite(v) else None for v in values]


def finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def check_phase(phase: str) -> None:
    if phase not in PHASES:
        raise ValueError(f"Expected phase to be one of {PHASES}. Received: phase={phase!r}")


def ln_classes(num_classes: int) -> float:
    return math.log(max(int(num_classes), 2))


def chance(num_classes: int) -> float:
    return 1.0 / max(int(num_classes), 2)


def accuracy(summary: Mapping[str, Any] | None, split: str) -> float | None:
    scores = (summary or {}).get(split)
    if not isinstance(scores, Mapping) or "accuracy" not in scores:
        return None
    return finite(as_float(scores["accuracy"]))


def phase_settings(
    settings: Mapping[str, Any] | None, history: History, phase: str
) -> dict[str, Any]:
    """The run's settings, with the phase's learning rate read off its first epoch and its epoch
    count off the history when the settings do not hold them (a schedule decays the rate later;
    the flag set the first one)."""
    out = dict(settings or {})
    if out.get(EPOCHS_PARAM[phase]) is None and history:
        out[EPOCHS_PARAM[phase]] = len(history)
    param = LR_PARAM[phase]
    if out.get(param) is None:
        rates = [r for r in (series(history, "lr") or []) if math.isfinite(r)]
        if rates:
            out[param] = rates[0]
    return out
