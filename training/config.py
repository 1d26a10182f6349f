"""Training configuration: one validated dataclass, saved as ``config.json`` with every run.

CLI flags map one to one onto fields (``--epochs-head`` → ``epochs_head``), so a run's config
file is also the command that reproduces it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from training.errors import ConfigError
from training.fields import arg
from training.fit.schedules import SCHEDULES

OPTIMIZERS = ("adam", "adamw", "sgd")
PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")
SWITCHES = ("auto", "on", "off")
# How the work is spread, not what it computes: a run resumed on other devices is the same run.
FINGERPRINT_FREE = ("devices", "origin")
"""Fields that do not change what a run computes: a run resumed on other devices, or typed again
without the app's ``--origin`` note, is the same run."""
CLASS_WEIGHTS = ("auto", "balanced", "none")
"""``--class-weights``: auto weights the loss by inverse class frequency when the audit finds the
classes imbalanced (see ``training.fit.class_weights``), balanced always, none never."""
AUTO = "auto"
"""``--lr auto``/``--finetune-lr auto``: ``train`` picks the rate by the learning-rate range test
(see ``training.fit.lr_auto``) and stores the number it trained with."""
RATES = ("lr", "finetune_lr")
RUNS_ON = "how the work runs (not what it computes)"
ORIGIN = re.compile(r"[A-Za-z0-9._-]{1,80}:[a-z0-9_]{1,40}")
"""``--origin``: a run id and a finding's check name."""
BOUNDS: dict[str, tuple[float, float]] = {
    "image_size": (8, 2048),
    "batch_size": (1, 65536),
    "epochs_head": (0, 100_000),
    "epochs_finetune": (0, 100_000),
    "head_units": (0, 65536),
    "seed": (0, 2**31 - 1),
    "unfreeze": (0, 10_000),
    "lr": (0.0, 10.0),
    "finetune_lr": (0.0, 10.0),
    "l2": (0.0, 100.0),
    "dropout": (0.0, 0.95),
    "label_smoothing": (0.0, 0.5),
    "val_split": (0.0, 0.9),
}
"""What a numeric field accepts at all, for a run and for a search's ``--space`` alike; a search
or advice stays inside the narrower ``SEARCH_LIMITS``."""
OPEN_LOW = ("lr", "finetune_lr")
"""Fields whose low bound is excluded: a learning rate of 0 trains nothing."""
SEARCH_LIMITS: dict[str, tuple[float, float]] = {
    "lr": (1e-8, 1.0),
    "finetune_lr": (1e-8, 1.0),
    "l2": (1e-8, 1.0),
    "dropout": (0.0, 0.9),
    "head_units": (0, 4096),
    "label_smoothing": (0.0, 0.5),
    "unfreeze": (1, 32),
    "epochs_head": (1, 1000),
    "epochs_finetune": (1, 1000),
}
"""How far a search or the babysitter's advice may move each hyperparameter: beyond these a value
is valid but never worth proposing (an lr over 1 explodes, a dropout over 0.9 drops the signal, a
4,096-unit head on pooled features only overfits). The tuner's space and the findings' actions
read them here, so both stay inside the same bounds."""


class FieldError(ConfigError):
    """A config field outside what it accepts. The CLI prints the message (in flags); the app
    names the field in its form's words from ``field``, ``value`` and the bounds."""

    def __init__(
        self,
        message: str,
        field: str,
        value: Any = None,
        low: float | None = None,
        high: float | None = None,
        hint: str = "",
    ):
        super().__init__(message)
        self.field, self.value, self.low, self.high, self.hint = field, value, low, high, hint


def learning_rate(text: str) -> float | str:
    """``--lr``/``--finetune-lr`` as typed: ``auto`` or a number (its bounds are checked with
    the other fields'); argparse names the flag of a ValueError."""
    return AUTO if str(text).strip().lower() == AUTO else float(text)


@dataclass(kw_only=True)
class SharedConfig:
    """The fields ``train``, ``check`` and ``search`` share: the data, the weights, the input, the
    split and how the work runs. Declared once here, so both CLIs' flags, help and checks agree;
    a search hands them on unchanged to each fine-tune (:meth:`shared_values`)."""

    data: str = arg(help="folder of class subfolders, train/val splits, or a .zip", positional=True)
    weights: str = arg("imagenet", "imagenet | none | PATH")
    image_size: int | None = arg(None, "square input size (default: the backbone's)", type=int)
    batch_size: int = arg(32)
    val_split: float = arg(0.2, "share of the images held out for validation")
    seed: int = arg(0)
    class_weights: str = arg(
        "auto",
        "weight the loss by inverse class frequency: auto when the audit finds the classes "
        "imbalanced (largest/smallest over 3), balanced always, none never",
        choices=CLASS_WEIGHTS,
    )
    precision: str = arg("auto", choices=PRECISIONS, group=RUNS_ON)
    jit: str = arg("auto", "XLA compilation", choices=SWITCHES, group=RUNS_ON)
    devices: int | str = arg(
        "auto",
        "data-parallel fine-tuning over N devices (JAX); auto: every GPU when there are several",
        group=RUNS_ON,
    )
    origin: str | None = arg(
        None,
        "the run and finding this run applies, RUN:CHECK (written by the app's apply buttons)",
        metavar="RUN:CHECK",
    )

    def __post_init__(self) -> None:
        self.weights = normalize_weights(self.weights)

    def validate_shared(self) -> None:
        """Raise FieldError naming the first shared field that is out of range."""
        if self.image_size is not None:
            check_int("image_size", self.image_size, *BOUNDS["image_size"])
        for name in ("batch_size", "seed"):
            check_int(name, getattr(self, name), *BOUNDS[name])
        _check_float("val_split", self.val_split)
        _check_choice("precision", self.precision, PRECISIONS)
        _check_choice("jit", self.jit, SWITCHES)
        _check_choice("class_weights", self.class_weights, CLASS_WEIGHTS)
        if self.origin is not None and not ORIGIN.fullmatch(str(self.origin)):
            raise FieldError(
                f"Expected --origin as RUN:CHECK (e.g. 20261207-101500-ab12:underfitting). "
                f"Received: {self.origin!r}.",
                "origin",
                self.origin,
            )
        if self.devices != "auto":
            self.devices = _parse_devices(self.devices)

    def shared_values(self) -> dict[str, Any]:
        """The shared fields and their values, to build another config from this one."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(SharedConfig)}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(kw_only=True)
class TrainConfig(SharedConfig):
    """Everything that decides what a training run computes.

    ``unfreeze`` is a number of top backbone blocks or ``"all"``; ``None`` picks 2 for pretrained
    weights (fine-tune the top, keep the generic early features) and ``"all"`` for ``weights=none``
    (random early layers have nothing worth keeping).
    """

    backbone: str = arg(help="see `python -m training backbones`")
    epochs_head: int = arg(10, "phase 1 epochs (0 skips)")
    epochs_finetune: int = arg(5, "phase 2 epochs (0 skips)")
    unfreeze: int | str | None = arg(
        None,
        "top backbone blocks to train in phase 2: N or all (default 2, or all with --weights none)",
    )
    lr: float | str = arg(
        1e-3,
        "phase 1 learning rate, or auto: where check's range test finds the loss falls fastest",
        type=learning_rate,
        metavar="LR",
    )
    finetune_lr: float | str = arg(
        1e-4,
        "phase 2 learning rate, or auto: a tenth of the auto phase 1 rate",
        type=learning_rate,
        metavar="LR",
    )
    l2: float = arg(0.0, "L2 on the head's kernels")
    dropout: float = arg(0.2)
    head_units: int = arg(0, "hidden head layer (0: none)")
    optimizer: str = arg("adam", choices=OPTIMIZERS)
    schedule: str = arg("constant", "learning-rate schedule within each phase", choices=SCHEDULES)
    label_smoothing: float = arg(0.0)
    augment: bool = arg(True, "turn off flip/rotation/zoom augmentation in phase 2")
    # In the fingerprint: it changes the saved model, so a run's config.json says which it holds.
    calibrate: bool = arg(
        True, "keep the raw probabilities: no temperature fitted on validation after training"
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.unfreeze, str) and self.unfreeze != "all":
            self.unfreeze = _parse_unfreeze(self.unfreeze)
        for name in RATES:  # "Auto" as typed in a config file
            if str(getattr(self, name)).strip().lower() == AUTO:
                setattr(self, name, AUTO)
        self.validate()

    def validate(self) -> None:
        """Raise ConfigError naming the first field that is out of range (see ``BOUNDS``)."""
        self.validate_shared()
        for name in ("epochs_head", "epochs_finetune", "head_units"):
            check_int(name, getattr(self, name), *BOUNDS[name])
        if self.unfreeze not in (None, "all"):
            check_int("unfreeze", self.unfreeze, *BOUNDS["unfreeze"])
        for name in ("lr", "finetune_lr", "l2", "dropout", "label_smoothing"):
            if getattr(self, name) != AUTO or name not in RATES:
                _check_float(name, getattr(self, name))
        _check_choice("optimizer", self.optimizer, OPTIMIZERS)
        _check_choice("schedule", self.schedule, SCHEDULES)
        if self.epochs_head == 0 and self.epochs_finetune == 0:
            raise ConfigError(
                "Both phases are skipped: epochs_head=0 and epochs_finetune=0. "
                "Give at least one of --epochs-head or --epochs-finetune a positive value."
            )

    def check_unfreeze(self, blocks: int) -> None:
        """``--unfreeze`` against the backbone's number of blocks (``blocks``; 0 when unknown),
        checked before a run exists: also with ``--epochs-finetune 0``, since a value no phase
        can use is a typo either way."""
        if blocks and isinstance(self.unfreeze, int) and self.unfreeze > blocks:
            raise FieldError(
                f"Expected --unfreeze to be 'all' or an integer in [0, {blocks}] ({self.backbone} "
                f"has {blocks} blocks). Received: {self.unfreeze!r}.",
                "unfreeze",
                self.unfreeze,
                0,
                blocks,
            )

    @property
    def auto_rates(self) -> tuple[str, ...]:
        """The learning rates still to be picked by the range test (``auto``)."""
        return tuple(name for name in RATES if getattr(self, name) == AUTO)

    @property
    def pretrained(self) -> bool:
        """Whether the backbone starts from learned weights (whose BatchNorm stats we keep)."""
        return self.weights != "none"

    def resolved_unfreeze(self) -> int | str:
        """The number of top blocks phase 2 unfreezes, with the default filled in."""
        if self.unfreeze is None:
            return 2 if self.pretrained else "all"
        return self.unfreeze

    def fingerprint(self, dataset_key: str) -> str:
        """Identity of "the same arguments on the same data": a re-run with it resumes."""
        config = {k: v for k, v in self.to_dict().items() if k not in FINGERPRINT_FREE}
        blob = json.dumps({"config": config, "dataset": dataset_key}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(
                f"Unknown config field(s) {unknown}. Expected some of: {sorted(known)}."
            )
        return cls(**values)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")

    @classmethod
    def load(cls, path: Path) -> TrainConfig:
        return cls.from_dict(json.loads(Path(path).read_text()))


def normalize_weights(weights: str | None) -> str:
    """``None``/"none"/"random" → "none"; "imagenet" stays; anything else is a file path.

    The one reading of a ``--weights`` value: the registry's loader starts from it too."""
    word = "" if weights is None else str(weights).strip().lower()
    if word in ("none", "random", ""):
        return "none"
    if word == "imagenet":
        return "imagenet"
    return str(weights)


def _parse_devices(value: Any) -> int:
    """``--devices``: "auto" or a device count from 1 (one device, no data parallelism)."""
    try:
        count = int(value)
    except (TypeError, ValueError):
        count = 0
    if isinstance(value, bool) or count < 1 or str(count) != str(value).strip():
        raise ConfigError(
            f"Expected --devices to be 'auto' or a device count of 1 or more. Received: {value!r}."
        )
    return count


def _parse_unfreeze(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ConfigError(
            f"Expected --unfreeze to be a number of top blocks or 'all'. Received: {value!r}."
        ) from None


def _flag(name: str) -> str:
    """The flag a user typed for a config field: messages speak the user's words."""
    return "--" + name.replace("_", "-")


def check_int(name: str, value: Any, low: int, high: int, hint: str = "") -> None:
    """A FieldError, in flags, unless ``value`` is an integer in [low, high]."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise FieldError(
            f"Expected {_flag(name)} to be an integer in [{low}, {high}]. Received: {value!r}.",
            name,
            value,
            low,
            high,
            hint,
        )


def _check_float(name: str, value: Any) -> None:
    (low, high), open_low = BOUNDS[name], name in OPEN_LOW
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = (low < value if open_low else low <= value) and value <= high
    if not ok:
        bracket = "(" if open_low else "["
        raise FieldError(
            f"Expected {_flag(name)} to be a number in {bracket}{low}, {high}]. "
            f"Received: {value!r}.",
            name,
            value,
            low,
            high,
        )


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise FieldError(
            f"Expected {_flag(name)} to be one of {list(choices)}. Received: {value!r}.",
            name,
            value,
        )
