"""The index's rows as readers see them: a damaged row is refused with its id named, and every
listing says which rows it skipped, so a damaged row never hides a run silently."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from training.store.journal import KINDS, STATUSES

REPAIR_ROWS = "run `python -m training runs repair`"


def unreadable_message(run_ids: list[str], db_path: Path) -> str:
    """What every listing says of the index rows it skipped: a damaged row hides no run
    silently, and repair rebuilds it from the run's folder."""
    shown = ", ".join(f"{run_id!r:.80}" for run_id in run_ids[:5])
    more = f" and {len(run_ids) - 5} more" if len(run_ids) > 5 else ""
    runs = "1 run" if len(run_ids) == 1 else f"{len(run_ids)} runs"
    return (
        f"{runs} could not be read: {shown}{more} — {REPAIR_ROWS} (the index {db_path} is "
        "damaged there; the run folders are untouched)"
    )


def check_run(run: Any) -> None:
    """Refuse a row whose decoded values no reader expects (``TypeError``/``ValueError``)."""
    if not isinstance(run.config, dict) or not isinstance(run.summary, dict | None):
        raise TypeError("its config or summary is not a JSON object")
    if run.kind not in KINDS or run.status not in STATUSES:
        raise ValueError(f"kind {run.kind!r:.40} or status {run.status!r:.40} is unknown")
    if not isinstance(run.pid, int | None):
        raise TypeError(f"its pid {run.pid!r:.40} is not a number")
