"""The Launch form as the CLI's own config: one ``SearchConfig`` → the exact argument lists.

The form builds a :class:`tuner.config.SearchConfig`, the object ``python -m tuner search``
builds from its flags, so what the page validates is what the job will run, and a field the
config refuses is named in the form's words. Every value becomes one list element (never shell
text). A submission is keyed by its arguments and a per-form token, so a double-click or a rerun
of the script starts one job; the last launched settings are kept under the home as the next
session's defaults.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from training.atomic import write_text
from training.config import FieldError
from training.errors import BabysitterError, ConfigError
from training.fields import to_argv
from training.store import Layout
from tuner.config import SearchConfig
from tuner.space import Range

# The form's words for each config field it sets (what a message about that field must say).
LABELS = {
    "backbones": "Backbones",
    "image_size": "Image size",
    "weights": "Weights",
    "batch_size": "Batch size",
    "trials": "Trials",
    "stages": "Stages",
    "epochs_head": "Head epochs",
    "epochs_finetune": "Fine-tune epochs",
    "top_k": "Top K fine-tuned",
}
FORM_FIELDS = tuple(LABELS)
# What the gate reads: the data, the backbone and how images are fed (no search settings).
CHECK_FIELDS = ("weights", "image_size", "batch_size", "val_split", "seed", "precision", "jit")


def defaults() -> dict[str, Any]:
    """The form's starting values: the CLI's defaults, at MobileNetV2's 224 px."""
    fields = {f.name: f.default for f in dataclasses.fields(SearchConfig)}
    values = {name: fields[name] for name in FORM_FIELDS if name != "backbones"}
    return {**values, "backbones": ["MobileNetV2"], "image_size": 224}


def problem(error: ConfigError) -> str:
    """A refused config said in the form's words ("Trials must be at least 1.")."""
    label = LABELS.get(getattr(error, "field", ""))
    if not isinstance(error, FieldError) or label is None:
        return str(error)
    if error.field == "backbones":
        return "Backbones: pick at least one."
    value = error.value
    if isinstance(value, bool) or not isinstance(value, int | float):
        text = f"{label} must be a number"
    elif error.low is not None and value < error.low:
        text = f"{label} must be at least {error.low:g}"
    elif error.high is not None and value > error.high:
        text = f"{label} must be at most {error.high:g}"
    else:
        text = f"{label} is not valid"
    return f"{text}: {error.hint}." if error.hint else f"{text}."


def search_args(config: SearchConfig) -> list[str]:
    """``tuner search DATA --backbone A,B …`` (``python -m`` is added by the job).

    The form's fields are always written, the rest only when not the default, so the command
    shown is complete and parses back into this exact config (``training.fields.to_argv``).
    """
    return ["tuner", "search", *to_argv(config, always=FORM_FIELDS)]


def check_args(config: SearchConfig) -> list[str]:
    """``training check DATA --backbone FIRST … --lr auto``: the sanity gate on the first
    backbone. The search samples its rate inside the window the gate measures, so the gate
    judges that window (``--lr auto``), not a single rate the search will never use."""
    train = config.train_config(config.backbones[0], lr="auto")
    only = ("backbone", "lr", *CHECK_FIELDS)
    return ["training", "check", *to_argv(train, always=("backbone", *CHECK_FIELDS[:3]), only=only)]


def command_line(args: list[str]) -> str:
    """What to type in a terminal for the same job."""
    return shlex.join(["python", "-m", *args])


def submission_key(args: list[str], token: str) -> str:
    """One key per (command, form): a second click on the same form finds the first job."""
    return hashlib.sha256(json.dumps([args, token]).encode()).hexdigest()[:16]


def save_last(home: Path, config: SearchConfig) -> None:
    """Keep the launched settings as the next session's defaults (best effort)."""
    with contextlib.suppress(BabysitterError):  # the job is started: a lost default is no error
        write_text(Layout(home).last_launch_file(), json.dumps(config.to_dict(), indent=1) + "\n")


RANGE_KNOBS = (
    "lr",
    "finetune_factor",
    "l2",
    "dropout",
    "head_units",
    "unfreeze",
    "label_smoothing",
    "optimizer",
    "schedule",
)
"""The searched knobs the Launch form shows under "Advanced: search ranges" (every knob a
finding's advice may name for a search)."""


def range_text(rng: Range) -> str:
    """A range as its field shows it and ``--space`` reads it: ``1e-05:0.1``, ``adam,sgd``."""
    if rng.kind == "choice":
        return ",".join(str(c) for c in rng.choices)
    return f"{rng.low:g}:{rng.high:g}"


def without_flag(message: str) -> str:
    """``--space 'l2=x': expected …`` said under the field's own label: ``expected …``."""
    head, sep, rest = message.partition(": ")
    return rest if sep and head.startswith("--space") else message


def gate_key(config: SearchConfig | Mapping[str, Any]) -> str:
    """What a sanity gate checked, as one key: the data, the first backbone and the input
    settings. A gate is shown on the form only while the form would check the same."""
    if isinstance(config, SearchConfig):
        config = config.train_config(config.backbones[0]).to_dict()
    values = {name: config.get(name) for name in ("backbone", *CHECK_FIELDS)}
    data = str(config.get("data") or "")
    with contextlib.suppress(OSError, ValueError):
        data = str(Path(data).resolve())
    blob = json.dumps({"data": data, **values}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def load_last(home: Path) -> dict[str, Any]:
    """The last launched settings that still make a valid config (else nothing): dataset and
    the form's fields."""
    try:
        values = json.loads(Layout(home).last_launch_file().read_text(encoding="utf-8"))
        config = SearchConfig(**values)
    except (OSError, ValueError, TypeError, ConfigError):
        return {}
    fields = {name: getattr(config, name) for name in FORM_FIELDS}
    ranges = {f"space_{k}": v for k, _, v in (item.partition("=") for item in config.space)}
    return {"data": config.data, **fields, **ranges}
