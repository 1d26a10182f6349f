"""The search space: which hyperparameters a search samples, over which ranges, on which scale.

Ranges follow the CS231n advice: sample at random (not on a grid), and sample scale-like
quantities (learning rate, L2) uniformly in log space, so each decade gets the same share of the
trials. A space is plain data (``to_dict``/``from_dict``, stored per stage in the run store) and
is declared on a Keras Tuner ``HyperParameters`` object by :meth:`SearchSpace.register`.

Keras Tuner quirks this module works around:

- a ``HyperParameters`` object keeps the *first* definition of a name: declaring ``lr`` again with
  a new range silently returns a value from the old one. Each stage therefore registers on a
  fresh ``keras_tuner.HyperParameters()``, and :meth:`SearchSpace.register` refuses an object
  that already holds a different range under the same name.
- ``hp.Choice`` refuses mixed value types (``[0, 0.5]`` is int + float), so choice values are
  coerced to the hyperparameter's own type here (``dropout=0,0.5`` → ``[0.0, 0.5]``).
- ``hp.Float``'s default is ``min_value`` unless given; we pass the middle of the range (the
  geometric middle for log ranges), which is what a trial without a sampled value gets.

This module holds the space's ranges and their rules (``--space`` parsing is in
:mod:`tuner.overrides`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from training.config import BOUNDS, OPTIMIZERS, SEARCH_LIMITS
from training.errors import ConfigError
from training.fit.schedules import SCHEDULES

if TYPE_CHECKING:
    import keras_tuner

KINDS = ("float", "int", "choice")

HYPERPARAMETERS: dict[str, str] = {
    "backbone": "which pretrained backbone computes the features (searched when several are given)",
    "lr": "learning rate of the head (phase 1); phase 2 uses lr × finetune_factor",
    "l2": "L2 weight penalty on the head's Dense kernels",
    "dropout": "dropout rate before the head's classifier layer",
    "optimizer": "optimizer of both phases (adam, adamw or sgd with Nesterov momentum)",
    "schedule": "learning-rate schedule over the epochs (constant, cosine or step)",
    "head_units": "width of the head's hidden Dense layer (0: no hidden layer)",
    "label_smoothing": "label smoothing of the cross-entropy loss",
    "unfreeze": "number of top backbone blocks trained in phase 2",
    "finetune_factor": "phase-2 learning rate as a fraction of lr (fine-tune lr = lr × factor)",
}
"""Every name a space may hold, in the order they are registered (which Keras Tuner's random
sampling follows), with what each one means."""

HEAD_HYPERPARAMETERS = (
    "backbone",
    "lr",
    "l2",
    "dropout",
    "optimizer",
    "schedule",
    "head_units",
    "label_smoothing",
)
"""Hyperparameters a head trial on cached features depends on: its score says how good they are."""

FINETUNE_HYPERPARAMETERS = ("unfreeze", "finetune_factor")
"""Phase-2 hyperparameters: sampled with a trial, used only when its configuration is fine-tuned."""


@dataclass(frozen=True)
class _Spec:
    """What values a name accepts (``domain``) and how far a search may move it (``limits``)."""

    kinds: tuple[str, ...]
    type: type
    domain: tuple[float, float] = (-math.inf, math.inf)
    open_low: bool = False
    limits: tuple[float, float] = (-math.inf, math.inf)
    log: bool = False
    choices: tuple[Any, ...] | None = None


_SPECS: dict[str, _Spec] = {
    "backbone": _Spec(("choice",), str),
    # Overrides may go past the limits on purpose (an lr range that explodes, to test the search);
    # only narrowing and widening stay inside them. So lr alone has no upper bound here: head
    # trials take any rate, while a fine-tune's config still refuses one over BOUNDS["lr"].
    "lr": _Spec(("float", "choice"), float, (0.0, math.inf), True, SEARCH_LIMITS["lr"], log=True),
    "l2": _Spec(("float", "choice"), float, BOUNDS["l2"], False, SEARCH_LIMITS["l2"], log=True),
    "dropout": _Spec(
        ("float", "choice"), float, BOUNDS["dropout"], False, SEARCH_LIMITS["dropout"]
    ),
    "optimizer": _Spec(("choice",), str, choices=OPTIMIZERS),
    "schedule": _Spec(("choice",), str, choices=SCHEDULES),
    "head_units": _Spec(
        ("choice", "int"), int, BOUNDS["head_units"], False, SEARCH_LIMITS["head_units"]
    ),
    "label_smoothing": _Spec(
        ("float", "choice"),
        float,
        BOUNDS["label_smoothing"],
        False,
        SEARCH_LIMITS["label_smoothing"],
    ),
    "unfreeze": _Spec(("int", "choice"), int, BOUNDS["unfreeze"], False, SEARCH_LIMITS["unfreeze"]),
    "finetune_factor": _Spec(("float", "choice"), float, (0.0, 1.0), True, (1e-4, 1.0), log=True),
}


def spec(name: str) -> _Spec:
    """The rules for ``name``; a ConfigError listing the known names for anything else."""
    if name not in _SPECS:
        raise ConfigError(
            f"Unknown hyperparameter {name!r}. Expected one of: {', '.join(HYPERPARAMETERS)}."
        )
    return _SPECS[name]


@dataclass
class Range:
    """One hyperparameter's range: ``low``..``high`` for float/int (``log``: sampled uniformly in
    log space), or a list of ``choices``.

    Values are checked against what the training code accepts (``dropout`` ≤ 0.95, an optimizer
    it knows…); a bad one raises ConfigError naming the hyperparameter and what was received.
    """

    name: str
    kind: str
    low: float | int | None = None
    high: float | int | None = None
    choices: list[Any] | None = None
    log: bool = False

    def __post_init__(self) -> None:
        rules = spec(self.name)
        if self.kind not in KINDS:
            raise ConfigError(
                f"Expected the kind of {self.name} to be one of {list(KINDS)}. "
                f"Received: {self.kind!r}."
            )
        if self.kind not in rules.kinds:
            raise ConfigError(
                f"Expected {self.name} to be searched as {' or '.join(rules.kinds)}. "
                f"Received a {self.kind} range."
            )
        if self.kind == "choice":
            self._check_choices(rules)
        else:
            self._check_bounds(rules)

    def _check_bounds(self, rules: _Spec) -> None:
        name = self.name
        if self.choices is not None:
            raise ConfigError(f"A {self.kind} range of {name} takes low and high, not choices.")
        low = _number(name, "low", self.low, self.kind)
        high = _number(name, "high", self.high, self.kind)
        if low >= high:
            raise ConfigError(
                f"Expected the range of {name} to have low < high. Received: [{low}, {high}] "
                f"({'empty' if low == high else 'inverted'}); give it as {name}=LOW:HIGH "
                "with LOW below HIGH, or as a single value to fix it."
            )
        self.log = bool(self.log)
        if self.log and low <= 0:
            raise ConfigError(
                f"Expected a positive low bound for {name} sampled in log space. Received: "
                f"low={low}. Raise low above 0 or sample {name} on a linear scale."
            )
        for bound in (low, high):
            _check_domain(name, bound, rules)
        self.low, self.high = low, high

    def _check_choices(self, rules: _Spec) -> None:
        name = self.name
        if self.low is not None or self.high is not None:
            raise ConfigError(f"A choice of {name} takes choices, not low and high.")
        if isinstance(self.choices, str | bytes) or not isinstance(self.choices, Iterable):
            raise ConfigError(
                f"Expected the choices of {name} to be a list of values. "
                f"Received: {self.choices!r}."
            )
        values = [_coerce(name, v, rules) for v in self.choices]
        if not values:
            raise ConfigError(
                f"Expected at least one choice for {name}. Received an empty list; "
                f"give them as {name}=A,B."
            )
        seen = [v for i, v in enumerate(values) if v in values[:i]]
        if seen:
            raise ConfigError(
                f"The choices of {name} list {seen[0]!r} more than once. Received: {values}."
            )
        for value in values:
            if rules.choices is not None and value not in rules.choices:
                raise ConfigError(
                    f"Unknown {name} {value!r}. Expected some of: {', '.join(rules.choices)}."
                )
            if rules.type is not str:
                _check_domain(name, value, rules)
        self.choices = values
        self.log = False

    @property
    def numeric(self) -> bool:
        return self.kind != "choice"

    @property
    def default(self) -> Any:
        """The middle of the range (geometric for log ranges), or the first choice."""
        if self.kind == "choice":
            return self.choices[0]
        middle = math.sqrt(self.low * self.high) if self.log else (self.low + self.high) / 2
        if self.kind == "int":
            return min(max(round(middle), self.low), self.high)
        return middle

    def contains(self, value: Any) -> bool:
        if self.kind == "choice":
            return value in self.choices
        return self.low <= value <= self.high

    def describe(self) -> str:
        if self.kind == "choice":
            return f"{self.name} {'|'.join(str(c) for c in self.choices)}"
        scale = " (log)" if self.log else ""
        return f"{self.name} {self.low:.3g}..{self.high:.3g}{scale}"

    def to_dict(self) -> dict[str, Any]:
        if self.kind == "choice":
            return {"name": self.name, "kind": "choice", "choices": list(self.choices)}
        return {
            "name": self.name,
            "kind": self.kind,
            "low": self.low,
            "high": self.high,
            "log": self.log,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Range:
        known = {"name", "kind", "low", "high", "choices", "log"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"Unknown range field(s) {unknown} in {dict(data)}. Expected some of "
                f"{sorted(known)}."
            )
        if "name" not in data or "kind" not in data:
            raise ConfigError(f"A range needs a name and a kind. Received: {dict(data)}.")
        return cls(**dict(data))

    def register(self, hp: keras_tuner.HyperParameters) -> Any:
        """Declare this range on ``hp`` and return its value there."""
        _refuse_redefinition(hp, self)
        if self.kind == "float":
            return hp.Float(
                self.name,
                min_value=float(self.low),
                max_value=float(self.high),
                sampling="log" if self.log else "linear",
                default=float(self.default),
            )
        if self.kind == "int":
            return hp.Int(
                self.name,
                min_value=int(self.low),
                max_value=int(self.high),
                sampling="log" if self.log else "linear",
                default=int(self.default),
            )
        return hp.Choice(self.name, list(self.choices))


def _number(name: str, which: str, value: Any, kind: str) -> float | int:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok:
        raise ConfigError(f"Expected {which} of {name} to be a finite number. Received: {value!r}.")
    if kind == "int":
        if float(value) != int(value):
            raise ConfigError(
                f"Expected {which} of {name} to be a whole number. Received: {value!r}."
            )
        return int(value)
    return float(value)


def _coerce(name: str, value: Any, rules: _Spec) -> Any:
    """A choice value as the name's type (so Keras Tuner gets one type per Choice)."""
    if rules.type is str:
        if not isinstance(value, str) or not value:
            raise ConfigError(f"Expected the {name} choices to be names. Received: {value!r}.")
        return value
    number = _number(name, "a choice", value, "int" if rules.type is int else "float")
    return rules.type(number)


def _check_domain(name: str, value: float, rules: _Spec) -> None:
    low, high = rules.domain
    inside = (low < value if rules.open_low else low <= value) and value <= high
    if not inside:
        bracket = "(" if rules.open_low else "["
        raise ConfigError(
            f"Expected {name} values in {bracket}{low:g}, {high:g}]. Received: {value!r}."
        )


def _refuse_redefinition(hp: Any, rng: Range) -> None:
    for existing in getattr(hp, "space", []):
        if existing.name != rng.name:
            continue
        config = existing.get_config()
        if rng.kind == "choice":
            same = list(config.get("values", [])) == list(rng.choices)
        else:
            same = (config.get("min_value"), config.get("max_value"), config.get("sampling")) == (
                rng.low,
                rng.high,
                "log" if rng.log else "linear",
            )
        if not same:
            raise ValueError(
                f"This HyperParameters object already defines {rng.name!r} as {existing!r}; "
                "Keras Tuner would keep that definition and ignore the new range. Register "
                "each stage's space on a fresh keras_tuner.HyperParameters()."
            )


class SearchSpace(MutableMapping[str, Range]):
    """An ordered mapping hyperparameter name → :class:`Range`.

    Iteration follows :data:`HYPERPARAMETERS` whatever the insertion order, so a space rebuilt
    from JSON registers (and is sampled) exactly like the original.
    """

    def __init__(self, ranges: Iterable[Range] | Mapping[str, Range] = ()):
        self._ranges: dict[str, Range] = {}
        items = ranges.values() if isinstance(ranges, Mapping) else ranges
        for rng in items:
            self[rng.name] = rng

    def __getitem__(self, name: str) -> Range:
        return self._ranges[name]

    def __setitem__(self, name: str, rng: Range) -> None:
        if not isinstance(rng, Range):
            raise TypeError(f"Expected a Range for {name!r}. Received: {rng!r}.")
        if rng.name != name:
            raise ConfigError(f"A range named {rng.name!r} cannot be stored as {name!r}.")
        self._ranges[name] = rng

    def __delitem__(self, name: str) -> None:
        del self._ranges[name]

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._ranges, key=list(HYPERPARAMETERS).index))

    def __len__(self) -> int:
        return len(self._ranges)

    def __repr__(self) -> str:
        return f"SearchSpace({self.describe()})"

    def copy(self) -> SearchSpace:
        return SearchSpace.from_dict(self.to_dict())

    def describe(self) -> str:
        """One line for logs: ``lr 1e-05..0.1 (log), optimizer adam|adamw|sgd, …``."""
        return ", ".join(self[name].describe() for name in self) or "(empty space)"

    def register(self, hp: keras_tuner.HyperParameters) -> dict[str, Any]:
        """Declare every range on ``hp`` (use a fresh ``keras_tuner.HyperParameters()`` per
        stage) and return the values it holds: the defaults on a fresh object, a trial's values
        on a trial's."""
        return {name: self[name].register(hp) for name in self}

    def subset(self, names: Iterable[str]) -> SearchSpace:
        """The ranges among ``names`` (e.g. :data:`HEAD_HYPERPARAMETERS`)."""
        wanted = set(names)
        return SearchSpace(self[name] for name in self if name in wanted)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {name: self[name].to_dict() for name in self}

    @classmethod
    def from_dict(cls, data: Mapping[str, Mapping[str, Any]]) -> SearchSpace:
        if not isinstance(data, Mapping):
            raise ConfigError(f"Expected a search space as a mapping. Received: {data!r}.")
        ranges = []
        for name, values in data.items():
            if not isinstance(values, Mapping):
                raise ConfigError(
                    f"Expected the range of {name} as a mapping. Received: {values!r}."
                )
            ranges.append(Range.from_dict({"name": name, **values}))
            if ranges[-1].name != name:
                raise ConfigError(f"The range stored as {name!r} is named {ranges[-1].name!r}.")
        return cls(ranges)


def numeric_range(name: str, low: float, high: float, log: bool | None = None) -> Range:
    """A float or int range of ``name`` on its natural scale (log for lr, l2, finetune_factor)."""
    rules = spec(name)
    kind = next((k for k in rules.kinds if k != "choice"), None)
    if kind is None:
        raise ConfigError(
            f"Expected {name} as a list of choices ({name}=A,B). Received a range {low}:{high}."
        )
    return Range(name, kind, low=low, high=high, log=rules.log if log is None else log)


def default_space(
    backbones: list[str],
    lr_bounds: tuple[float, float] | None = None,
    phase2: bool = True,
) -> SearchSpace:
    """The ranges a search starts from.

    Args:
        backbones: the backbones searched; ``backbone`` is a hyperparameter only when there are
            several (with one there is nothing to choose).
        lr_bounds: the learning-rate range the sanity gate's ``lr_range`` finding measured;
            without it, 1e-5..1e-1 (four decades, log scale: wide enough to contain where the
            loss starts to move and where it explodes).
        phase2: whether trials also sample the fine-tuning hyperparameters.
    """
    names = list(dict.fromkeys(backbones or []))
    if not names:
        raise ConfigError("Expected at least one backbone in --backbone. Received none.")
    low, high = lr_bounds if lr_bounds is not None else (1e-5, 1e-1)
    ranges = [
        Range("lr", "float", low=low, high=high, log=True),
        Range("l2", "float", low=1e-6, high=1e-1, log=True),
        Range("dropout", "float", low=0.0, high=0.7),
        Range("optimizer", "choice", choices=list(OPTIMIZERS)),
        Range("schedule", "choice", choices=list(SCHEDULES)),
        Range("head_units", "choice", choices=[0, 128, 256, 512]),
        Range("label_smoothing", "float", low=0.0, high=0.2),
    ]
    if len(names) > 1:
        ranges.insert(0, Range("backbone", "choice", choices=names))
    if phase2:
        ranges += [
            Range("unfreeze", "int", low=1, high=4),
            Range("finetune_factor", "float", low=0.01, high=0.3, log=True),
        ]
    return SearchSpace(ranges)
