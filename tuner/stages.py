"""Coarse → fine: how many trials each stage gets, and how the next stage's ranges follow from the
last stage's trials.

CS231n: search coarse first (few epochs, wide ranges), then finer around what worked, and worry
when the best value sits at the edge of its range — the optimum may lie outside it, so the next
stage looks past that edge instead of narrowing. Everything here is pure and deterministic: a
resumed search recomputes the same plan and the same spaces from the same trials.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from training.babysit.findings import Finding
from training.errors import ConfigError
from tuner.space import HEAD_HYPERPARAMETERS, Range, SearchSpace, numeric_range, spec

EDGE_FRACTION = 0.1
"""A best value within this fraction of its range's width (log units for log ranges) from an edge
is "at the edge"."""

MIN_LOG_PAD = math.log10(2.0)
"""A narrowed log range reaches at least a factor 2 beyond the top values on either side."""

MIN_LINEAR_PAD = 0.1
"""A narrowed linear range reaches at least this fraction of the old width beyond the top values."""

WIDEN_DECADES = 1.0
"""How far a log range is pushed past the edge its best value sits at (a linear one: its width)."""

COARSE_WEIGHT = 1.5
"""Each stage gets this many times the trials of the next one (20 trials / 2 stages → 12, 8)."""

_ALIASES = {"finetune_lr": "finetune_factor"}  # fine-tune lr = lr × factor: scaling one scales both


def plan_stages(trials: int, stages: int) -> list[int]:
    """Trials per stage, the coarse stages first and largest; at least one each.

    Weights fall by :data:`COARSE_WEIGHT` per stage and are rounded by largest remainder, so the
    plan sums to ``trials`` exactly (20, 2 → [12, 8]; 10, 3 → [5, 3, 2]; 3, 3 → [1, 1, 1]).
    """
    if isinstance(stages, bool) or not isinstance(stages, int) or stages < 1:
        raise ConfigError(f"Expected --stages to be a positive integer. Received: {stages!r}.")
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise ConfigError(f"Expected --trials to be a positive integer. Received: {trials!r}.")
    if trials < stages:
        raise ConfigError(
            f"Expected --trials ({trials}) to be at least --stages ({stages}): every stage needs "
            "a trial. Raise --trials or lower --stages."
        )
    weights = [COARSE_WEIGHT ** (stages - 1 - i) for i in range(stages)]
    shares = [trials * w / sum(weights) for w in weights]
    plan = [math.floor(s) for s in shares]
    by_remainder = sorted(range(stages), key=lambda i: (-(shares[i] - plan[i]), i))
    for i in by_remainder[: trials - sum(plan)]:
        plan[i] += 1
    plan.sort(reverse=True)  # remainders may favour a later stage by one: the coarse one first
    for i in range(stages):
        if plan[i] == 0:
            plan[0] -= 1
            plan[i] += 1
            plan.sort(reverse=True)
    return plan


def next_stage(
    space: SearchSpace,
    trials: list[dict],
    top_k: int = 3,
    *,
    stage: int,
    names: Iterable[str] | None = None,
) -> tuple[SearchSpace, list[Finding]]:
    """The space of stage ``stage``, fitted to the trials of the stage before it.

    Args:
        space: the space the trials were sampled from.
        trials: ``{"hyperparameters": {...}, "score": val_accuracy}``; a score of ``None`` (or
            NaN) is a failed trial and is left out.
        top_k: how many of the best trials the ranges are fitted around.
        stage: the number of the stage the returned space is for (used in the findings).
        names: the hyperparameters to refit; default: those in :data:`HEAD_HYPERPARAMETERS`
            (a head trial's score says nothing about fine-tuning ones, which are kept).

    Returns:
        The new space and the findings: one ``edge_of_range`` warning per range whose best value
        sits at an edge (that range is widened past it), or a single ``ok`` one if none does.

    Numeric ranges narrow to the top values ± max(half their spread, a factor 2 in log space or
    10% of the width in linear space), within the old range; choices keep the values among the
    top trials. A best value at an edge that is not a hard limit (dropout 0 is one) instead
    pushes the range one decade (log) or one width (linear) past that edge.
    """
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ConfigError(f"Expected top_k to be a positive integer. Received: {top_k!r}.")
    scored = _scored(trials)
    fitted = set(HEAD_HYPERPARAMETERS if names is None else names)
    out = space.copy()
    if not scored:
        return out, [
            Finding(
                "stage_results",
                "warn",
                measured=f"0 of {len(trials)} trials finished with a score",
                expected="at least one completed trial to fit the next stage's ranges to",
                advice=(
                    f"No trial of the stage before stage {stage} finished: stage {stage} searches "
                    "the same ranges. If every trial exploded, lower the lr range (--space lr=…)."
                ),
                evidence={"stage": stage, "trials": len(trials)},
            )
        ]
    top = scored[:top_k]
    warnings: list[Finding] = []
    best_values: dict[str, Any] = {}
    for name in space:
        rng = space[name]
        if name not in fitted:
            continue
        values = [t[name] for t in top if name in t]
        if rng.numeric:
            values = [v for v in values if _usable(rng, v)]
        if not values:
            continue
        best_values[name] = values[0]
        if not rng.numeric:
            out[name] = _keep_choices(rng, values)
            continue
        new, edge = _refit(rng, values)
        out[name] = new
        if edge:
            warnings.append(_edge_finding(rng, new, values[0], edge, stage, len(top)))
    if warnings:
        return out, warnings
    return out, [
        Finding(
            "edge_of_range",
            "ok",
            measured="no best value at an edge of its range",
            expected=f"best values more than {EDGE_FRACTION:.0%} of the width from the edges",
            advice=(
                f"Stage {stage} narrows the ranges around the top {len(top)} trials: "
                + ", ".join(out[n].describe() for n in best_values if out[n].numeric)
                + "."
            ),
            evidence={
                "stage": stage,
                "top_k": len(top),
                "best": best_values,
                "ranges": {
                    n: [space[n].low, space[n].high] for n in best_values if space[n].numeric
                },
            },
        )
    ]


def apply_actions(space: SearchSpace, actions: Iterable[Mapping[str, Any]]) -> SearchSpace:
    """A copy of ``space`` with the babysitter's machine-readable advice applied, in order.

    ``narrow``/``widen`` set a range's bounds (a numeric choice becomes a range); ``raise`` and
    ``lower`` shift a numeric range by ``factor`` (log ranges: × or ÷ both bounds; linear ones:
    the bounds scaled), inside the hard limits. ``finetune_lr`` acts on ``finetune_factor``.
    Other ops, names not in the space and choices of names are left alone.
    """
    out = space.copy()
    for action in actions or []:
        if not isinstance(action, Mapping):
            continue
        op = action.get("op")
        name = action.get("param", action.get("hyperparameter"))
        if op in ("raise", "lower"):
            name = _ALIASES.get(name, name)
        if name not in out:
            continue
        rng = out[name]
        if op in ("narrow", "widen"):
            low, high = action.get("low"), action.get("high")
            if rng.numeric:
                out[name] = _bounded(rng, low, high)
            elif spec(name).type is not str:
                out[name] = numeric_range(name, low, high)
        elif op in ("raise", "lower") and rng.numeric:
            factor = action.get("factor", _factor(action))
            ok = isinstance(factor, int | float) and not isinstance(factor, bool)
            if not ok or not math.isfinite(factor) or factor <= 0:
                raise ConfigError(
                    f"Expected a positive factor in the {op} action on {name}. "
                    f"Received: {factor!r}."
                )
            out[name] = _shift(rng, factor if op == "raise" else 1 / factor, op)
    return out


def _factor(action: Mapping[str, Any]) -> float:
    """How far a ``raise``/``lower`` from ``from`` to ``to`` moves (×10 when it starts at 0)."""
    start, end = action.get("from"), action.get("to")
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (start, end))
    if numbers and start > 0 and end > 0 and start != end:
        return max(end / start, start / end)
    return 10.0


# --- fitting -------------------------------------------------------------------------------------


def _scored(trials: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The completed trials' hyperparameters, best first (ties keep the given order)."""
    rows = []
    for index, trial in enumerate(trials):
        if not isinstance(trial, Mapping) or not isinstance(trial.get("hyperparameters"), Mapping):
            raise ConfigError(
                f"Expected each trial as {{'hyperparameters': {{...}}, 'score': float | None}}. "
                f"Received: {trial!r}."
            )
        score = trial.get("score")
        if score is None or isinstance(score, bool):
            continue
        score = float(score)
        if math.isfinite(score):
            rows.append((-score, index, dict(trial["hyperparameters"])))
    return [values for _, _, values in sorted(rows, key=lambda r: (r[0], r[1]))]


def _usable(rng: Range, value: Any) -> bool:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    return ok and (value > 0 or not rng.log)


def _keep_choices(rng: Range, values: list[Any]) -> Range:
    kind = spec(rng.name).type
    seen = set()
    for value in values:
        try:
            seen.add(kind(value))
        except (TypeError, ValueError):
            continue
    kept = [c for c in rng.choices if c in seen]
    return Range(rng.name, "choice", choices=kept or list(rng.choices))


def _t(rng: Range, value: float) -> float:
    return math.log10(value) if rng.log else float(value)


def _value(rng: Range, t: float) -> float:
    return 10.0**t if rng.log else t


def _limits(rng: Range, extra: Iterable[float] = ()) -> tuple[float, float]:
    """How far a range may move: the name's hard limits, stretched to hold the range itself and
    any ``extra`` values (an override may go past the limits on purpose)."""
    hard_low, hard_high = spec(rng.name).limits
    if rng.log and hard_low <= 0:
        hard_low = rng.low / 1000
    values = [rng.low, rng.high, *extra]
    return min(hard_low, *values), max(hard_high, *values)


def _refit(rng: Range, values: list[float]) -> tuple[Range, str | None]:
    """The narrowed (or, best at an edge, widened) range and the edge, if any."""
    lim_low, lim_high = (_t(rng, v) for v in _limits(rng, values))
    low, high = _t(rng, rng.low), _t(rng, rng.high)
    width = high - low
    tops = [_t(rng, v) for v in values]
    best, top_low, top_high = tops[0], min(tops), max(tops)
    pad = max((top_high - top_low) / 2, MIN_LOG_PAD if rng.log else MIN_LINEAR_PAD * width)
    new_low = max(top_low - pad, min(low, top_low))
    new_high = min(top_high + pad, max(high, top_high))
    edge = _edge(best, low, high, lim_low, lim_high)
    reach = WIDEN_DECADES if rng.log else width
    if edge == "low":
        new_low = max(min(low, top_low) - reach, lim_low)
    elif edge == "high":
        new_high = min(max(high, top_high) + reach, lim_high)
    return _from_t(rng, new_low, new_high, lim_low, lim_high), edge


def _edge(best: float, low: float, high: float, lim_low: float, lim_high: float) -> str | None:
    """``low``/``high`` when ``best`` is within :data:`EDGE_FRACTION` of that edge and the edge
    can still move (a best dropout of 0 at a range starting at 0 is not a worry)."""
    margin = EDGE_FRACTION * (high - low)
    tiny = 1e-9 * max(1.0, abs(low), abs(high))
    near_low = best - low <= margin and low > lim_low + tiny
    near_high = high - best <= margin and high < lim_high - tiny
    if near_low and near_high:
        return "low" if best - low <= high - best else "high"
    return "low" if near_low else "high" if near_high else None


def _from_t(rng: Range, low: float, high: float, lim_low: float, lim_high: float) -> Range:
    """A range of ``rng``'s kind and scale from t-space bounds: floats rounded outward to three
    significant digits, ints to whole numbers, both kept inside the limits and non-empty."""
    bottom, top = _value(rng, lim_low), _value(rng, lim_high)
    a, b = _value(rng, low), _value(rng, high)
    if rng.kind == "int":
        bottom, top = math.ceil(bottom - 1e-9), math.floor(top + 1e-9)
        a = max(math.floor(a + 1e-9), bottom)
        b = min(math.ceil(b - 1e-9), top)
        if b <= a:
            if a + 1 <= top:
                b = a + 1
            else:
                a = b - 1
        return Range(rng.name, "int", low=a, high=b, log=rng.log)
    a = max(_round(a, down=True), bottom)
    b = min(_round(b, down=False), top)
    if b <= a:  # rounding cannot do this, only limits tighter than the range: keep the old one
        a, b = rng.low, rng.high
    return Range(rng.name, "float", low=a, high=b, log=rng.log)


def _round(value: float, down: bool) -> float:
    """``value`` to three significant digits, rounded away from the inside of the range."""
    if value == 0 or not math.isfinite(value):
        return value
    rounded = float(f"{value:.3g}")
    if abs(rounded - value) <= 1e-9 * abs(value):  # float noise (0.3 - 0.07), not a digit
        return rounded
    if (down and rounded > value) or (not down and rounded < value):
        step = 10.0 ** (math.floor(math.log10(abs(value))) - 2)
        rounded = float(f"{rounded + (-step if down else step):.3g}")
    return rounded


def _bounded(rng: Range, low: Any, high: Any) -> Range:
    """``rng`` with new bounds, on its own scale (int bounds rounded outward)."""
    if rng.kind == "int" and isinstance(low, int | float) and isinstance(high, int | float):
        low, high = math.floor(low), math.ceil(high)
    return Range(rng.name, rng.kind, low=low, high=high, log=rng.log)


def _shift(rng: Range, factor: float, op: str) -> Range:
    """``rng`` scaled by ``factor`` inside its limits; if the limits squash it to nothing, the
    old width is kept against the limit it ran into."""
    lim_low, lim_high = (_t(rng, v) for v in _limits(rng))
    low, high = _t(rng, rng.low), _t(rng, rng.high)
    if rng.log:
        step = math.log10(factor)
        new_low, new_high = low + step, high + step
    else:
        new_low, new_high = low * factor, high * factor
    new_low = min(max(new_low, lim_low), lim_high)
    new_high = min(max(new_high, lim_low), lim_high)
    if new_high <= new_low:
        width = high - low
        if op == "raise":
            new_low, new_high = max(lim_high - width, lim_low), lim_high
        else:
            new_low, new_high = lim_low, min(lim_low + width, lim_high)
    return _from_t(rng, new_low, new_high, lim_low, lim_high)


def _edge_finding(
    old: Range, new: Range, best: float, edge: str, stage: int, top_k: int
) -> Finding:
    name = old.name
    scale = "log units" if old.log else "the width"
    beyond = f"one decade (×{10**WIDEN_DECADES:g})" if old.log else "one range width"
    return Finding(
        "edge_of_range",
        "warn",
        measured=f"best {name} {best:.3g} at the {edge} edge of [{old.low:.3g}, {old.high:.3g}]",
        expected=f"the best {name} more than {EDGE_FRACTION:.0%} of {scale} away from both edges",
        advice=(
            f"The best trial's {name} ({best:.3g}) sits at the {edge} edge of the range searched, "
            f"[{old.low:.3g}, {old.high:.3g}]: the optimum may lie outside it. Stage {stage} "
            f"widens past that edge by {beyond} and searches [{new.low:.3g}, {new.high:.3g}]."
        ),
        evidence={
            "hyperparameter": name,
            "best": best,
            "low": old.low,
            "high": old.high,
            "edge": edge,
            "log": old.log,
            "stage": stage,
            "top_k": top_k,
        },
        action={
            "op": "widen",
            "param": name,
            "edge": edge,
            "low": new.low,
            "high": new.high,
            "to": [new.low, new.high],
        },
    )
