"""Apply a finding: the next run's command, built from a finished run's config and one action.

A ``train`` run is trained again with its own config and the one change. A search is searched
again with its ranges moved by the action (a ``--space`` override around the proposed value, or
the range the finding names): a search samples, so a point value becomes the range around it,
one decade for a log-scale rate, a quarter of the default width for a linear one. Either way the
new run carries ``--origin RUN:CHECK``, so both runs can say where the change came from. The
command is validated through the CLI's own config before a button offers it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from app.launch import command_line
from training.babysit.advice import field_name, fresh_action, render, shown
from training.config import TrainConfig
from training.errors import ConfigError
from training.fields import to_argv
from tuner.config import SearchConfig
from tuner.overrides import parse_overrides
from tuner.space import HYPERPARAMETERS, default_space, spec

HALF_DECADE = math.sqrt(10.0)
"""A proposed rate is searched over one decade centred on it (a factor √10 either side)."""
LINEAR_SHARE = 0.25
"""A proposed linear value (dropout, smoothing) is searched over this share of its default range."""


@dataclass(frozen=True)
class Applied:
    """The next run: its argument list (``python -m`` is added by the job), the words of the
    change for the button, and the origin it records."""

    args: list[str]
    change: str
    origin: str
    button: str

    @property
    def command(self) -> str:
        return command_line(self.args)


def origin_of(run_id: str, check: str) -> str:
    return f"{run_id}:{check}"


def apply_finding(
    kind: str,
    config: Mapping[str, Any],
    run_id: str,
    finding: Mapping[str, Any],
    settings: Mapping[str, Any] | None = None,
) -> Applied | None:
    """The run that applies ``finding``'s action to a ``kind`` run ("train" or "search") with
    ``config``; None when the finding proposes nothing concrete (no action, a value already in
    use, a file to choose) or the change makes a config the CLI refuses."""
    action = fresh_action(finding.get("action"), settings or config)
    if not action or action.get("to") in (None, "PATH") or "param" not in action:
        return None
    origin = origin_of(run_id, str(finding.get("check")))
    try:
        if kind == "train":
            return _train_again(config, action, origin)
        if kind == "search":
            return _search_again(config, action, origin, settings or {})
    except (ConfigError, TypeError, ValueError):
        return None
    return None


def _train_again(config: Mapping[str, Any], action: Mapping[str, Any], origin: str) -> Applied:
    param, to = action["param"], action["to"]
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    if param not in fields or isinstance(to, list | tuple):
        raise ConfigError(f"a train run has no single value {param} to set")
    values = {k: v for k, v in config.items() if k in fields}
    new = TrainConfig(**{**values, param: to, "origin": origin})
    args = ["training", "train", *to_argv(new, always=(param,))]
    button = f"Train again with {field_name(param)} {shown(to)}"
    return Applied(args, render(action, style="app"), origin, button)


def _search_again(
    config: Mapping[str, Any],
    action: Mapping[str, Any],
    origin: str,
    settings: Mapping[str, Any],
) -> Applied:
    param, to = action["param"], action["to"]
    fields = {f.name for f in dataclasses.fields(SearchConfig)}
    values = {k: v for k, v in config.items() if k in fields}
    if param == "finetune_lr" and not isinstance(to, list | tuple):
        lr = settings.get("lr")
        if not isinstance(lr, int | float) or lr <= 0:
            raise ConfigError("the fine-tune rate is searched as a factor of a known lr")
        param, to = "finetune_factor", float(f"{min(to / lr, 1.0):.3g}")
    if param in HYPERPARAMETERS:
        item = space_item(param, to)
        kept = [s for s in values.get("space") or [] if s.partition("=")[0].strip() != param]
        values["space"] = [*kept, item]
        label = f"{field_name(param)}: search {_shown_range(item.partition('=')[2])}"
    elif param in fields and param not in ("data", "backbones", "space"):
        values[param] = to
        label = render(action, style="app")
    else:
        raise ConfigError(f"a search has no {param} to change")
    new = SearchConfig(**{**values, "origin": origin})
    parse_overrides(new.space)
    always = ("trials", "stages", "epochs_head", "epochs_finetune", "top_k")
    args = ["tuner", "search", *to_argv(new, always=always)]
    return Applied(args, label, origin, "Search again with this change")


def space_item(param: str, to: Any) -> str:
    """``--space`` for searching around ``to`` (or over ``to`` when it is already a range)."""
    if isinstance(to, list | tuple):
        return f"{param}={to[0]:g}:{to[1]:g}"
    base = default_space(["any"])[param] if param != "backbone" else None  # default ranges
    if base is None or base.kind == "choice":
        return f"{param}={_choices(param, to)}"
    low_limit, high_limit = spec(param).limits
    if base.kind == "int":
        low, high = max(int(to) - 1, int(low_limit)), min(int(to) + 1, int(high_limit))
        return f"{param}={low}:{high}" if low < high else f"{param}={int(to)}"
    if base.log:
        low, high = to / HALF_DECADE, to * HALF_DECADE
    else:
        half = (base.high - base.low) * LINEAR_SHARE / 2
        low, high = to - half, to + half
    low, high = max(low, low_limit), min(high, high_limit)
    return f"{param}={float(shown(low)):g}:{float(shown(high)):g}"


def _choices(param: str, to: Any) -> str:
    """A choice knob: a width is searched at half, the proposal and twice; a kind is fixed."""
    if param != "head_units":
        return str(to)
    high = spec("head_units").limits[1]
    if int(to) == 0:
        return "0,128"
    values = sorted({max(int(to) // 2, 1), int(to), min(int(to) * 2, int(high))})
    return ",".join(str(v) for v in values)


def _shown_range(text: str) -> str:
    """``0.001:0.01`` as ``[0.001, 0.01]``; choices ``a,b`` as ``a, b``."""
    if ":" in text:
        low, high = text.split(":")[:2]
        return f"[{low}, {high}]"
    return text.replace(",", ", ")


def applied_by(runs: list[Any], run_id: str) -> list[tuple[str, str]]:
    """(run id, check) of the runs that applied a finding of ``run_id``, oldest first."""
    found = []
    for run in runs:
        source, _, check = str((run.config or {}).get("origin") or "").partition(":")
        if source == run_id:
            found.append((run.id, check))
    return list(reversed(found))
