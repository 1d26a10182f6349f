"""A search's trials and stages in the run store: what the command center plots.

One row per Keras Tuner trial (hyperparameters, stage, status, score, per-epoch history, time)
and one per stage (the ranges it sampled from). Keras Tuner keeps its own files for resuming;
these rows are the product's record, written as each trial ends, so the app sees them live.
"""

from __future__ import annotations

import json
from typing import Any

from training.store.database import _dumps, _now
from training.store.journal import TRIAL_STATUSES
from training.store.runs import RunStore


def record_trial(
    store: RunStore,
    run_id: str,
    trial_id: str,
    stage: int,
    status: str,
    hyperparameters: dict[str, Any],
    score: float | None,
    history: list[dict[str, Any]],
    seconds: float,
    error: str | None = None,
) -> None:
    """Insert or replace one trial; a redone trial overwrites its row and keeps its place."""
    if status not in TRIAL_STATUSES:
        raise ValueError(f"Expected trial status in {TRIAL_STATUSES}. Received: {status!r}")
    with store.connect(write=True) as conn:
        row = conn.execute(
            "SELECT seq FROM trials WHERE run_id = ? AND trial_id = ?", (run_id, trial_id)
        ).fetchone()
        seq = (
            row[0]
            if row
            else conn.execute(
                "SELECT COALESCE(MAX(seq), 0) + 1 FROM trials WHERE run_id = ?", (run_id,)
            ).fetchone()[0]
        )
        conn.execute(
            "INSERT OR REPLACE INTO trials (run_id, trial_id, stage, seq, status,"
            " hyperparameters_json, score, history_json, seconds, error, recorded_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                run_id,
                trial_id,
                stage,
                seq,
                status,
                _dumps(hyperparameters),
                score,
                _dumps(history),
                seconds,
                error,
                _now(),
            ),
        )
        conn.execute("UPDATE runs SET heartbeat_at = ? WHERE id = ?", (_now(), run_id))
    store._journal(
        run_id,
        "trial",
        trial_id=trial_id,
        stage=stage,
        status=status,
        hyperparameters=hyperparameters,
        score=score,
        history=history,
        seconds=seconds,
        error=error,
    )


def trials(store: RunStore, run_id: str, stage: int | None = None) -> list[dict[str, Any]]:
    """The run's trials in the order they finished (optionally one stage's)."""
    query = "SELECT * FROM trials WHERE run_id = ?"
    params: tuple = (run_id,)
    if stage is not None:
        query += " AND stage = ?"
        params += (stage,)
    with store.connect() as conn:
        rows = conn.execute(query + " ORDER BY seq", params).fetchall()
    return [
        {
            "trial_id": r["trial_id"],
            "stage": r["stage"],
            "status": r["status"],
            "hyperparameters": json.loads(r["hyperparameters_json"]),
            "score": r["score"],
            "history": json.loads(r["history_json"]),
            "seconds": r["seconds"],
            "error": r["error"],
        }
        for r in rows
    ]


def record_stage(store: RunStore, run_id: str, stage: int, space: dict, planned: int) -> None:
    """The ranges stage ``stage`` samples from and how many trials it runs."""
    with store.connect(write=True) as conn:
        conn.execute(
            "INSERT OR REPLACE INTO stages (run_id, stage, space_json, trials) VALUES (?, ?, ?, ?)",
            (run_id, stage, _dumps(space), planned),
        )
    store._journal(run_id, "stage", stage=stage, space=space, trials=planned)


def stages(store: RunStore, run_id: str) -> list[dict[str, Any]]:
    with store.connect() as conn:
        rows = conn.execute(
            "SELECT * FROM stages WHERE run_id = ? ORDER BY stage", (run_id,)
        ).fetchall()
    return [
        {"stage": r["stage"], "space": json.loads(r["space_json"]), "trials": r["trials"]}
        for r in rows
    ]
