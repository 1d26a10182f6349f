"""``--space``: the command line's way to change a search's ranges, parsed into ``Range``s.

Kept apart from the space itself so that the parsing rules (forms, scales, messages that quote
the item) read in one place; the ranges it builds are validated by :mod:`tuner.space`.
"""

from __future__ import annotations

from collections.abc import Iterable

from training.errors import ConfigError
from tuner.space import HYPERPARAMETERS, Range, numeric_range, spec


def parse_overrides(items: Iterable[str]) -> dict[str, Range]:
    """Ranges from ``--space`` items; a later item for the same name wins.

    Forms: ``lr=1e-4:1e-2`` (a range on the name's natural scale), ``lr=1e-4:1e-2:linear`` or
    ``dropout=0.05:0.5:log`` (the scale given), ``optimizer=adam,sgd`` (choices), ``unfreeze=2``
    (one value: fixed).
    """
    out: dict[str, Range] = {}
    for item in items:
        name, rng = _parse_item(item)
        out[name] = rng
    return out


def _parse_item(item: str) -> tuple[str, Range]:
    text = str(item).strip()
    where = f"--space {item!r}"
    name, sep, value = text.partition("=")
    name, value = name.strip(), value.strip()
    if not sep or not name or not value:
        raise ConfigError(
            f"{where}: expected NAME=LOW:HIGH or NAME=A,B (e.g. lr=1e-4:1e-2, optimizer=adam,sgd)."
        )
    if name not in HYPERPARAMETERS:
        raise ConfigError(
            f"{where}: unknown hyperparameter {name!r}. Expected one of: "
            f"{', '.join(HYPERPARAMETERS)}."
        )
    try:
        if ":" in value:
            parts = [p.strip() for p in value.split(":")]
            log = None
            if len(parts) == 3:
                scale = parts.pop().lower()
                if scale not in ("log", "linear"):
                    raise ConfigError(
                        f"expected the scale to be log or linear. Received: {scale!r}."
                    )
                log = scale == "log"
            if len(parts) != 2 or not all(parts):
                raise ConfigError(f"expected {name}=LOW:HIGH[:log|linear]. Received: {value!r}.")
            low, high = (_parse_number(name, p) for p in parts)
            return name, numeric_range(name, low, high, log)
        values = [v.strip() for v in value.split(",")]
        if not all(values):
            raise ConfigError(f"expected {name}=A,B with no empty item. Received: {value!r}.")
        if spec(name).type is not str:
            values = [_parse_number(name, v) for v in values]
        return name, Range(name, "choice", choices=values)
    except ConfigError as error:
        reason = str(error)
        raise ConfigError(f"{where}: {reason[:1].lower()}{reason[1:]}") from None


def _parse_number(name: str, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"expected a number for {name}. Received: {text!r}.") from None
