"""Advice relative to the run: every proposed change starts from the run's own value.

A finding's ``action`` names one setting and the move: ``{"op": "raise" | "lower", "param":
field, "from": the run's value, "to": the proposal}``. It never proposes the value in use, nor
one outside ``SEARCH_LIMITS`` (where the search itself stops); when no such value exists there is
no action, and the advice says what else to try. The CLI renders an action as the flag to pass
(``--head-units 512``), the app as the form's field (``Head units: 256 → 512``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from training.config import SEARCH_LIMITS

FIRST_VALUES: dict[str, float | int] = {"l2": 1e-4, "head_units": 256, "label_smoothing": 0.1}
"""What a raise proposes from 0, where a factor means nothing: L2 1e-4 is the usual first
strength for a head on pooled features (Keras' and CS231n's examples start at 1e-4..1e-3); a
256-unit hidden layer is a small head next to 512–2,048 pooled features; 0.1 is the smoothing
of the Inception-v3 paper that introduced it."""
DROPOUT_FLOOR = 0.05
"""Lowering dropout halves it; under this it is switched off (0) instead."""
DROPOUT_STEP = 0.2
"""Raising dropout adds 0.2 (a rate is not a scale: 0.2 → 0.4 is a real change, ×10 is not)."""
_INTEGERS = {"head_units", "unfreeze", "epochs_head", "epochs_finetune"}
_NAMES = {
    "lr": "Learning rate (phase 1)",
    "finetune_lr": "Fine-tune learning rate",
    "l2": "L2",
    "dropout": "Dropout",
    "head_units": "Head units",
    "label_smoothing": "Label smoothing",
    "unfreeze": "Unfreeze blocks",
    "epochs_head": "Epochs (phase 1)",
    "epochs_finetune": "Epochs (phase 2)",
    "batch_size": "Batch size",
}


def current_value(settings: Mapping[str, Any] | None, param: str) -> Any:
    """The run's value of ``param``, with ``unfreeze``'s default filled in as train fills it."""
    settings = settings or {}
    value = settings.get(param)
    if param == "unfreeze" and value is None and settings:
        return "all" if str(settings.get("weights", "imagenet")).lower() == "none" else 2
    return value


def change(
    settings: Mapping[str, Any] | None, param: str, op: str, factor: float = 10.0
) -> dict[str, Any] | None:
    """The action that raises or lowers ``param`` from its value in ``settings``, or None.

    None when the run's value is unknown, when the move would leave ``SEARCH_LIMITS``, or when
    the proposal equals the value in use (a head already at the widest, L2 already 0…).
    """
    current = current_value(settings, param)
    if current is None or isinstance(current, bool):
        return None
    if param == "unfreeze":
        if current == "all":
            return None
        proposal: Any = int(current) + 1 if op == "raise" else int(current) - 1
    elif not isinstance(current, int | float) or not math.isfinite(current):
        return None
    elif op == "raise" and param == "dropout":
        proposal = current + DROPOUT_STEP
    elif op == "raise":
        proposal = current * factor if current > 0 else FIRST_VALUES.get(param)
    elif param == "dropout":
        proposal = current / 2 if current / 2 >= DROPOUT_FLOOR else 0.0
    else:
        proposal = current / factor
    if proposal is None:
        return None
    low, high = SEARCH_LIMITS.get(param, (0, math.inf))
    proposal = min(max(proposal, low), high)
    proposal = round(proposal) if param in _INTEGERS else float(f"{proposal:.3g}")
    if proposal == current or (op == "raise") != (proposal > current):
        return None
    return {"op": op, "param": param, "from": current, "to": proposal}


def flag(param: str) -> str:
    return "--" + param.replace("_", "-")


def _value(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def render(action: Mapping[str, Any] | None, style: str = "cli") -> str:
    """``--head-units 512`` (cli) or ``Head units: 256 → 512`` (app); "" without a change."""
    if not action or "param" not in action or "to" not in action:
        return ""
    param, to = action["param"], action["to"]
    if isinstance(to, list | tuple):  # a range for the search
        span = f"[{_value(to[0])}, {_value(to[1])}]"
        if style == "app":
            return f"{_NAMES.get(param, param)}: search {span}"
        return f"--space {param}={_value(to[0])}:{_value(to[1])}"
    if style == "app":
        return f"{_NAMES.get(param, param)}: {_value(action.get('from'))} → {_value(to)}"
    return f"{flag(param)} {_value(to)}"


def direction(action: Mapping[str, Any] | None) -> str | None:
    """ "up" or "down" for a point change, None otherwise (for the fault zoo's judge)."""
    if not action or not isinstance(action.get("to"), int | float):
        return None
    start = action.get("from")
    if not isinstance(start, int | float):
        return None
    return "up" if action["to"] > start else "down"
