"""What ``python -m training runs [list|show]`` prints: run tables and JSON documents.

Presentation only; the layout on disk stays in ``training.store``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from training.store.layout import ARTIFACTS
from training.store.runs import PLAIN_FIELDS, Run, shown_status


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.4f}" if 1e-2 <= abs(value) < 1e5 or value == 0 else f"{value:.3g}"
    if isinstance(value, dict | list):
        return json.dumps(value, default=str)
    return str(value)


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    lines = [headers, *rows]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines
    )


def _short(text: str, width: int = 28) -> str:
    return text if len(text) <= width else "…" + text[-(width - 1) :]


def _val_accuracy(summary: Mapping[str, Any]) -> tuple[Any, Any]:
    """(best, final) validation accuracy: a train run's best epoch or a search's best head
    trial; then what the saved model scores (``val.accuracy``)."""
    val = summary.get("val")
    final = val.get("accuracy") if isinstance(val, Mapping) else None
    return summary.get("best_val_accuracy", summary.get("head_val_accuracy")), final


def format_run_list(runs: list[Run]) -> str:
    """An aligned table of runs, in the given order; a run whose process is gone is
    'interrupted' (see ``shown_status``)."""
    if not runs:
        return "No runs yet."
    rows = []
    for run in runs:
        best, final = _val_accuracy(run.summary or {})
        acc = "-" if best is None and final is None else f"{_fmt(best)} / {_fmt(final)}"
        status = shown_status(run)
        dataset = Path(run.dataset).name if run.dataset else "-"
        # A train or check run's label is its backbone; a search's is "A+B", its summary the winner.
        backbone = _short(str((run.summary or {}).get("backbone") or run.label or "-"), 20)
        created = run.created_at[:19].replace("T", " ")
        rows.append([run.id, run.kind, status, _short(dataset), backbone, acc, created])
    headers = ["ID", "KIND", "STATUS", "DATASET", "BACKBONE", "VAL ACC best/final", "CREATED (UTC)"]
    return _table(headers, rows)


def _flatten(config: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for key, value in config.items():
        if isinstance(value, Mapping) and value:
            out += _flatten(value, f"{prefix}{key}.")
        else:
            out.append((f"{prefix}{key}", value))
    return out


def _pairs(items: list[tuple[str, Any]]) -> list[str]:
    width = max((len(k) for k, _ in items), default=0)
    return [f"  {k.ljust(width)}  {_fmt(v)}" for k, v in items]


def format_run(run: Run, epochs: list[dict[str, Any]], findings: list[dict[str, Any]]) -> str:
    """A human-readable report of one run: what it was, how each epoch went, what was found."""
    out = [f"Run {run.id}  ({run.kind}, {shown_status(run)})"]
    out += _pairs([(k, getattr(run, k)) for k in PLAIN_FIELDS[2:] if k not in ("status", "error")])
    if run.error:
        out += ["", "Error", *("  " + line for line in run.error.splitlines())]
    out += ["", "Config", *(_pairs(_flatten(run.config)) or ["  (empty)"])]
    out += ["", "Epochs"]
    if epochs:
        keys = [k for e in epochs for k in e if k not in ("phase", "epoch")]
        metrics = list(dict.fromkeys(keys))
        rows = [
            [str(e["phase"]), str(e["epoch"]), *(_fmt(e.get(k)) for k in metrics)] for e in epochs
        ]
        out += ["  " + line for line in _table(["phase", "epoch", *metrics], rows).splitlines()]
    else:
        out.append("  (none recorded)")
    if run.summary:
        out += ["", "Summary", *_pairs(_flatten(run.summary))]
    if findings:
        out += ["", "Findings"]
        for f in findings:
            detail = f.get("advice") or f.get("measured") or ""
            out.append(
                f"  [{f.get('status', '?')}] {f.get('check', f.get('check_id', '?'))}"
                + (f": {_fmt(detail)}" if detail else "")
            )
    paths = [("run", run.path)] + [
        (name, run.path / rel) for name, rel in ARTIFACTS.items() if (run.path / rel).exists()
    ]
    out += ["", "Paths", *_pairs(paths)]
    return "\n".join(out)


def run_to_dict(
    run: Run,
    epochs: list[dict[str, Any]] | None = None,
    findings: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A run as plain JSON-able data for ``--json``; may hold NaN floats.

    ``epochs`` and ``findings`` are included only when given, so a listing stays one query.
    """
    data = dataclasses.asdict(run)
    data["status"] = shown_status(run)
    data["path"] = str(run.path)
    if epochs is not None:
        data["epochs"] = epochs
    if findings is not None:
        data["findings"] = findings
    return data
