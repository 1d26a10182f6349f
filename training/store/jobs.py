"""The app's jobs in the index: one row per CLI process the app started (training/jobs.py runs
and supervises them; this module only reads and writes their rows and folders)."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from training.errors import BabysitterError
from training.store.database import _now
from training.store.runs import RunStore

RESUMABLE = {"tuner search", "training train"}


@dataclass(frozen=True)
class Job:
    """One row of the ``jobs`` table."""

    id: int
    run_id: str | None
    kind: str
    command: list[str]
    pid: int | None
    status: str
    log_path: Path
    created_at: str
    updated_at: str
    exit_code: int | None

    @property
    def command_line(self) -> str:
        """The command as a person would type it (for display only; never run through a shell)."""
        return shlex.join(["python", "-m", *self.command])

    @property
    def folder(self) -> Path:
        return self.log_path.parent

    @property
    def resumable(self) -> bool:
        return self.kind in RESUMABLE and self.status in ("cancelled", "interrupted", "failed")


def job_folder(store: RunStore, job_id: int) -> Path:
    """``jobs/<id>/``: the job's log, exit code and child pid."""
    return store.jobs_dir() / str(int(job_id))


def _job_from_row(row: Any) -> Job:
    return Job(
        id=row["id"],
        run_id=row["run_id"],
        kind=row["kind"],
        command=json.loads(row["command_json"]),
        pid=row["pid"],
        status=row["status"],
        log_path=Path(row["log_path"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        exit_code=row["exit_code"],
    )


def get_job(store: RunStore, job_id: int) -> Job:
    with store.connect() as conn:
        row = conn.execute("SELECT * FROM jobs WHERE id = ?", (int(job_id),)).fetchone()
    if row is None:
        raise BabysitterError(f"No job {job_id} in {store.home}.")
    return _job_from_row(row)


def list_jobs(store: RunStore, status: str | None = None) -> list[Job]:
    """Jobs, newest first, optionally of one status."""
    with store.connect() as conn:
        rows = conn.execute(
            "SELECT * FROM jobs WHERE (?1 IS NULL OR status = ?1) ORDER BY id DESC", (status,)
        ).fetchall()
    return [_job_from_row(r) for r in rows]


def update_job(store: RunStore, job_id: int, only_running: bool = False, **fields: Any) -> bool:
    sets = ", ".join(f"{name} = ?" for name in fields)
    where = "id = ?" + (" AND status = 'running'" if only_running else "")
    with store.connect(write=True) as conn:
        cur = conn.execute(
            f"UPDATE jobs SET {sets}, updated_at = ? WHERE {where}",
            (*fields.values(), _now(), int(job_id)),
        )
    return cur.rowcount > 0


def record_job(store: RunStore, args: list[str]) -> int:
    """The job's row (status running, no process yet) and its folder; its id."""
    now = _now()
    with store.connect(write=True) as conn:
        cur = conn.execute(
            "INSERT INTO jobs (kind, command_json, status, log_path, created_at, updated_at)"
            " VALUES (?, ?, 'running', '', ?, ?)",
            (f"{args[0]} {args[1]}", json.dumps(args), now, now),
        )
        job_id = int(cur.lastrowid)
    job_folder(store, job_id).mkdir(parents=True, exist_ok=True)
    return job_id
