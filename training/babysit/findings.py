"""A finding: one check's verdict as data: the CLI prints it, the app draws it, the tuner acts.

``action`` is the machine-readable half of the advice, for a search to apply without parsing
prose, computed from the run's own value (``training.babysit.advice``). Its shape is one of::

    {"op": "raise" | "lower", "param": "l2", "from": 0.001, "to": 0.01}
    {"op": "narrow", "param": "lr", "low": 1e-5, "high": 1e-3, "to": [1e-5, 1e-3]}
    {"op": "widen", "param": "lr", "edge": "high", "low": ..., "high": ..., "to": [...]}

``param`` is a ``TrainConfig`` field (``--head-units`` is ``head_units``). Findings stored by
earlier versions say ``hyperparameter`` instead of ``param``; readers accept both.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from training.babysit.advice import render

STATUSES = ("ok", "warn", "fail")
_RANK = {status: rank for rank, status in enumerate(STATUSES)}
_MARK = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL"}


@dataclass
class Finding:
    """What one check measured, what it expected, and what the user should do about it."""

    check: str
    status: str
    measured: Any
    expected: Any
    advice: str
    evidence: dict[str, Any] = field(default_factory=dict)
    action: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"Finding status must be one of {STATUSES}; received {self.status!r}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data (NumPy scalars and arrays become floats and lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self), default=_plain))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Finding:
        """A stored finding; one written by an older version (or damaged) lacks no field here:
        a page reading it shows what it has instead of failing."""
        names = {f.name for f in dataclasses.fields(cls)}
        given = {k: v for k, v in data.items() if k in names}
        status = given.get("status")
        given["status"] = status if status in STATUSES else "warn"
        given["evidence"] = given.get("evidence") if isinstance(given.get("evidence"), dict) else {}
        return cls(**{"check": "?", "measured": None, "expected": None, "advice": "", **given})


def _plain(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def as_dicts(findings: Iterable[Finding | Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [f.to_dict() if isinstance(f, Finding) else dict(f) for f in findings]


def worst_status(findings: Iterable[Finding | Mapping[str, Any]]) -> str:
    """``fail`` if any failed, else ``warn`` if any warned, else ``ok`` (also for none)."""
    ranks = [_RANK[d["status"]] for d in as_dicts(findings)]
    return STATUSES[max(ranks, default=0)]


def problems(findings: Iterable[Finding | Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The findings that are not ``ok``."""
    return [d for d in as_dicts(findings) if d["status"] != "ok"]


def format_value(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        return f"{value:.4g}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    return str(value)


def format_findings(
    findings: Iterable[Finding | Mapping[str, Any]], title: str = "Findings"
) -> str:
    """A readable report: one block per finding, problems spelled out with their advice."""
    items = as_dicts(findings)
    if not items:
        return f"{title}: none."
    lines = [f"{title} ({worst_status(items)}):"]
    for f in items:
        evidence = f.get("evidence") or {}
        folded = (
            f"; was {evidence['status_before']}, explained by {evidence['explained_by']}"
            if f["status"] == "ok"
            and evidence.get("explained_by")
            and evidence.get("status_before")
            else ""
        )
        lines.append(
            f"  [{_MARK[f['status']]}] {f['check']}: measured {format_value(f['measured'])}"
            f" (expected {format_value(f['expected'])}{folded})"
        )
        if f["status"] != "ok" or f.get("action"):
            lines.append(f"         {f['advice']}")
            if render(f.get("action")):
                lines.append(f"         → {render(f['action'])}")
            elif evidence.get("overruled_by"):
                lines.append(
                    f"         (its change is not offered: {evidence['overruled_by']} moves the "
                    "same setting the other way, and comes first)"
                )
        lines += _worth_a_look(f.get("evidence") or {})
    return "\n".join(lines)


def _worth_a_look(evidence: Mapping[str, Any]) -> list[str]:
    """``label_noise``'s named labels, one line each, or why none is named."""
    suspects = evidence.get("suspects") or []
    if not suspects:
        reason = evidence.get("suspects_reason")
        return [f"         {reason}"] if reason and evidence.get("cause") else []
    lines = [
        f"         Labels worth a second look ({evidence.get('suspects_total', len(suspects))}):"
    ]
    for s in suspects:
        where = s.get("file") or f"training row {s.get('row')}"
        lines.append(f"           {s.get('rank', '?')}. {where}: {s.get('why', '')}")
    if evidence.get("suspects_more"):
        lines.append(f"           …and {evidence['suspects_more']} more")
    return lines
