"""Advice relative to the run: every proposed change starts from the run's own value.

A finding's ``action`` names one setting and the move: ``{"op": "raise" | "lower", "param":
field, "from": the run's value, "to": the proposal}``. It never proposes the value in use, nor
one outside ``SEARCH_LIMITS`` (where the search itself stops); when no such value exists there is
no action, and the advice says what else to try. The CLI renders an action as the flag to pass
(``--head-units 512``), the app as the form's field (``Head units: 256 → 512``); advice prose,
written with flags, reads in the app's words through :func:`in_app_words`.
"""

from __future__ import annotations

import math
import re
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
    "epochs_head": "Head epochs",
    "epochs_finetune": "Fine-tune epochs",
    "batch_size": "Batch size",
    "weights": "Weights",
    "image_size": "Image size",
    "class_weights": "Class weights",
    "val_split": "Validation split",
    "top_k": "Top K fine-tuned",
    "backbone": "Backbones",
    "space": "search ranges",
    "finetune_factor": "Fine-tune rate (× head rate)",
    "optimizer": "Optimizer",
    "schedule": "Schedule",
}
"""The app's name for each setting (the Launch form's labels where it has the field)."""
_WORDS = {"PATH": "a local weights file"}
_FLAG = re.compile(
    r"(?P<no>no )?(?<![\w-])--(?P<flag>[a-z][a-z0-9-]*)"
    r"(?: (?P<value>-?\d+(?:\.\d+)?(?:e[+-]?\d+)?(?!\w|\.\d)|none|imagenet|balanced|all|PATH"
    r"|[a-z_][a-z0-9_]*=[^\s,;)]*[^\s,;).]))?"
)
_REDUNDANT = re.compile(r" ?\(no --no-augment\)")


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


def shown(value: Any) -> str:
    """A value as the app shows it: floats to 3 significant digits (a flag keeps them all)."""
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def field_name(param: str) -> str:
    """The app's name of a setting; an unknown one spelled out from its flag."""
    return _NAMES.get(param) or param.replace("_", " ").capitalize()


def render(action: Mapping[str, Any] | None, style: str = "cli") -> str:
    """``--head-units 512`` (cli) or ``Head units: 256 → 512`` (app); "" without a change."""
    if not action or "param" not in action or "to" not in action:
        return ""
    param, to = action["param"], action["to"]
    if isinstance(to, list | tuple):  # a range for the search
        if style == "app":
            return f"{field_name(param)}: search [{shown(to[0])}, {shown(to[1])}]"
        return f"--space {param}={_value(to[0])}:{_value(to[1])}"
    if style == "app":
        return f"{field_name(param)}: {shown(action.get('from'))} → {shown(to)}"
    return f"{flag(param)} {_value(to)}"


def fresh_action(
    action: Mapping[str, Any] | None, settings: Mapping[str, Any] | None
) -> Mapping[str, Any] | None:
    """The action, unless ``settings`` already use its proposal (a finding stored before the
    change was made, or by a version that proposed it anyway): the app never offers it then."""
    if not action or not settings or isinstance(action.get("to"), list | tuple):
        return action
    current = current_value(settings, action.get("param", ""))
    if current is not None and _same(current, str(action.get("to"))):
        return None
    return action


def in_app_words(text: str, settings: Mapping[str, Any] | None = None) -> str:
    """Advice written with CLI flags, in the app's words: ``--head-units 512`` becomes ``Head
    units: 256 → 512`` (the run's value first, when ``settings`` has it), and a value the run
    already uses is said to be in use rather than proposed again."""
    text = _REDUNDANT.sub("", text)
    return _FLAG.sub(lambda m: _in_words(m, settings or {}), text)


def _in_words(match: re.Match, settings: Mapping[str, Any]) -> str:
    param, value, prefix = match["flag"].replace("-", "_"), match["value"], match["no"] or ""
    if param == "no_augment":
        return prefix + "augmentation off"
    if value is None:
        return prefix + field_name(param)
    if param == "space" and "=" in value:
        name, _, span = value.partition("=")
        low, _, high = span.partition(":")
        return f"{prefix}{field_name(name)}: search [{_number(low)}, {_number(high)}]"
    current = current_value(settings, param)
    proposed = _WORDS.get(value) or _number(value)
    if current is None or isinstance(current, bool):
        return f"{prefix}{field_name(param)}: {proposed}"
    if _same(current, value):
        return f"{prefix}{field_name(param)} already {shown(current)}"
    return f"{prefix}{field_name(param)}: {shown(current)} → {proposed}"


def _number(text: str) -> str:
    """A number written in advice, to 3 significant digits; a word as it is."""
    try:
        value = float(text)
    except ValueError:
        return text
    return shown(value) if not value.is_integer() or "e" in text else text


def _same(current: Any, proposed: str) -> bool:
    try:
        return math.isclose(float(current), float(proposed), rel_tol=1e-3)
    except (TypeError, ValueError):
        return str(current).lower() == proposed.lower()


def direction(action: Mapping[str, Any] | None) -> str | None:
    """ "up" or "down" for a point change, None otherwise (for the fault zoo's judge)."""
    if not action or not isinstance(action.get("to"), int | float):
        return None
    start = action.get("from")
    if not isinstance(start, int | float):
        return None
    return "up" if action["to"] > start else "down"


def stronger_features(settings: Mapping[str, Any] | None) -> str:
    """How to get features that separate the classes better, from the weights the run used:
    never the weights kind already in use, and never ImageNet alone (it needs the internet;
    ``--weights PATH`` is the way without it)."""
    weights = str((settings or {}).get("weights") or "").lower()
    if weights == "none":
        return (
            "pretrained weights (--weights PATH for a local weights file, or --weights imagenet "
            "where it can be downloaded)"
        )
    if weights == "imagenet":
        return "a backbone whose ImageNet features fit these images better (--backbone)"
    if weights:
        return "weights pretrained on images closer to these (--weights PATH) or another --backbone"
    return "pretrained weights (--weights PATH, or --weights imagenet where it can be downloaded)"
