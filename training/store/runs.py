"""Runs: one row each in the index, one folder of artefacts each, and their journal.

Every index write is mirrored into the run folder's ``events.jsonl``, so the folder is the record
of what ran and ``runs repair`` can rebuild a lost index from it.

This module holds the run's record (its row, epochs, findings, events and journal),
which must change together.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import json
import os
import re
import secrets
import shutil
import sqlite3
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from training.errors import (
    BabysitterError,
    RunNotFoundError,
    StoreWriteError,
    TrainingDiverged,
    WriteError,
)
from training.store import journal
from training.store.database import Database, _dumps, _now
from training.store.job_env import job_id_from_env as _job_id
from training.store.journal import KINDS, STATUSES
from training.store.layout import ARTIFACTS, Layout
from training.store.rows import REPAIR_ROWS, check_run, unreadable_message

# A running run whose heartbeat is older than this is treated as dead: jobs heartbeat at least
# every epoch and from long epochs' batch callbacks, so five minutes of silence means a crash, a
# killed container or a machine that went away (where the pid check cannot see).
STALE_AFTER_S = 300.0

PLAIN_FIELDS = ("id", "kind", "label", "status", "created_at", "updated_at", "heartbeat_at", "pid")
PLAIN_FIELDS += ("fingerprint", "dataset", "error")
_LIST_HINT = "`python -m training runs list` shows all runs."


@dataclass(frozen=True)
class Run:
    """One row of the ``runs`` table, with its JSON decoded and its folder resolved."""

    id: str
    kind: str
    label: str
    status: str
    created_at: str
    updated_at: str
    heartbeat_at: str | None
    pid: int | None
    fingerprint: str
    dataset: str
    config: dict[str, Any]
    summary: dict[str, Any] | None
    error: str | None
    path: Path


def _slug(label: str, fallback: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")[:32].strip("-")
    return slug or fallback


def pid_alive(pid: int | None) -> bool:
    """Whether a process with this pid exists on this machine.

    ``os.kill(pid, 0)`` sends nothing; PermissionError means the process exists but belongs to
    someone else, so it counts as alive. On Windows signal 0 would terminate the process, so there
    we cannot tell and say alive (the heartbeat still catches dead runs).
    """
    if not pid or pid <= 0:
        return False
    if pid == os.getpid() or os.name == "nt":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def shown_status(run: Run) -> str:
    """The status a user is shown: a 'running' run whose process is gone (``kill -9``, a crash,
    a reboot) was interrupted, and ``list``, ``show``, ``--json`` and the app all say so. A live
    process with an old heartbeat is still shown running (it may be busy); resuming decides with
    :func:`run_is_alive`."""
    if run.status == "running" and not pid_alive(run.pid):
        return "interrupted"
    return run.status


def run_is_alive(run: Run, stale_after_s: float = STALE_AFTER_S) -> bool:
    """Whether a 'running' run still has a live process behind it: pid alive and heartbeat fresh."""
    if run.status != "running" or not pid_alive(run.pid):
        return False
    beat = datetime.fromisoformat(run.heartbeat_at or run.updated_at)
    return (datetime.now(UTC) - beat).total_seconds() <= stale_after_s


class RunStore(Database, Layout):
    """Runs, their metrics and findings in the index; their artefacts in one folder each.

    Args:
        home: Root folder. Defaults to ``$BABYSITTER_HOME`` or ``./babysitter-home``.
        expect_index: See :class:`~training.store.database.Database`.
    """

    def _run_from_row(self, row: sqlite3.Row) -> Run:
        """A row as a Run; a damaged row (bad JSON, an id that is not a run id, a value no page
        can show) is refused with its id named, never read into a path."""
        plain = {k: row[k] for k in PLAIN_FIELDS}
        try:
            summary = row["summary_json"]
            run = Run(
                **plain,
                config=json.loads(row["config_json"]),
                summary=json.loads(summary) if summary is not None else None,
                path=self.run_dir(row["id"]),
            )
            check_run(run)
            return run
        except (ValueError, TypeError, RecursionError, RunNotFoundError) as error:
            raise RunNotFoundError(
                f"the row {row['id']!r:.80} in {self.db_path} cannot be read ({error}); its run "
                f"folder, if any, is untouched: {REPAIR_ROWS} to rebuild the row from it"
            ) from None

    def _require(self, conn: sqlite3.Connection, run_id: str) -> sqlite3.Row:
        row = conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise RunNotFoundError(f"No run {run_id!r} in {self.home}. {_LIST_HINT}")
        return row

    # -- runs ---------------------------------------------------------------------------------

    def create_run(
        self, kind: str, label: str, config: dict[str, Any], fingerprint: str, dataset: str
    ) -> Run:
        """Register a new running run owned by this process and write its ``config.json``.

        The id is ``<UTC yyyymmdd-HHMMSS>-<slug of label>-<4 hex>``: sortable by time, readable in
        a listing, and unique enough that a collision is simply retried.
        """
        if kind not in KINDS:
            raise ValueError(f"Expected kind in {KINDS}. Received: {kind!r}")
        config_json = _dumps(config)
        for _ in range(10):
            now = _now()
            stamp = datetime.fromisoformat(now).strftime("%Y%m%d-%H%M%S")
            run_id = f"{stamp}-{_slug(label, kind)}-{secrets.token_hex(2)}"
            folder = self.run_dir(run_id)
            try:
                with self.connect(write=True) as conn:
                    conn.execute(
                        "INSERT INTO runs (id, kind, label, status, created_at, updated_at,"
                        " heartbeat_at, pid, fingerprint, dataset, config_json)"
                        " VALUES (?1, ?2, ?3, 'running', ?4, ?4, ?4, ?5, ?6, ?7, ?8)",
                        (run_id, kind, label, now, os.getpid(), fingerprint, dataset, config_json),
                    )
                    folder.mkdir(parents=True, exist_ok=False)
                    (folder / ARTIFACTS["config"]).write_text(
                        _dumps(config, indent=2) + "\n", encoding="utf-8"
                    )
                    self._journal(
                        run_id,
                        "created",
                        kind=kind,
                        label=label,
                        pid=os.getpid(),
                        fingerprint=fingerprint,
                        dataset=dataset,
                        created_at=now,
                        job_id=_job_id(),
                    )
            except (sqlite3.IntegrityError, FileExistsError):
                continue
            except BaseException:
                shutil.rmtree(folder, ignore_errors=True)
                raise
            return self.get_run(run_id)
        raise BabysitterError(f"Could not find a free run id under {self.home / 'runs'}.")

    def get_run(self, id_or_prefix: str) -> Run:
        """The run with this id, or the only run whose id starts with it.

        Raises:
            RunNotFoundError: nothing or several runs match; the message lists candidates.
        """
        query = id_or_prefix.strip()
        with self.connect() as conn:
            row = conn.execute("SELECT * FROM runs WHERE id = ?", (query,)).fetchone()
            if row is None and query:
                rows = conn.execute(
                    "SELECT * FROM runs WHERE substr(id, 1, ?) = ? ORDER BY created_at DESC",
                    (len(query), query),
                ).fetchall()
                if len(rows) > 1:
                    shown = ", ".join(r["id"] for r in rows[:5]) + (", …" if len(rows) > 5 else "")
                    raise RunNotFoundError(
                        f"Expected a run id or a unique prefix of one. Received: {query!r}, which"
                        f" matches {len(rows)} runs ({shown}). Give more of the id. {_LIST_HINT}"
                    )
                row = rows[0] if rows else None
            if row is None:
                ids = [r[0] for r in conn.execute("SELECT id FROM runs ORDER BY created_at DESC")]
        if row is not None:
            return self._run_from_row(row)
        close = difflib.get_close_matches(query, ids, n=5, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise RunNotFoundError(f"No run matches {query!r} in {self.home}.{hint} {_LIST_HINT}")

    def list_runs(self, kind: str | None = None, status: str | None = None) -> list[Run]:
        """Runs, newest first, optionally only of one kind and/or status."""
        if kind is not None and kind not in KINDS:
            raise ValueError(f"Expected kind in {KINDS}. Received: {kind!r}")
        if status is not None and status not in STATUSES:
            raise ValueError(f"Expected status in {STATUSES}. Received: {status!r}")
        return self._select_runs(
            "(?1 IS NULL OR kind = ?1) AND (?2 IS NULL OR status = ?2)", (kind, status)
        )

    def _read_runs(self, where: str, params: tuple) -> tuple[list[Run], list[str]]:
        """Runs matching an SQL condition, newest first, and the ids of rows that could not be
        read: one bad row never hides the others."""
        with self.connect() as conn:
            rows = conn.execute(
                f"SELECT * FROM runs WHERE {where} ORDER BY created_at DESC, id DESC", params
            ).fetchall()
        runs, unreadable = [], []
        for row in rows:
            try:
                runs.append(self._run_from_row(row))
            except RunNotFoundError:
                unreadable.append(row["id"])
        return runs, unreadable

    def _select_runs(self, where: str, params: tuple) -> list[Run]:
        """Runs matching an SQL condition, newest first; skipped rows said on stderr (the CLI's
        listings; the app's pages say it with ``unreadable_runs``)."""
        runs, unreadable = self._read_runs(where, params)
        if unreadable:
            print(f"warning: {unreadable_message(unreadable, self.db_path)}", file=sys.stderr)
        return runs

    def unreadable_runs(self) -> list[str]:
        """Ids of the index's rows that cannot be read, newest first (``runs repair`` rebuilds
        them from their folders)."""
        return self._read_runs("1", ())[1]

    def find_resumable(
        self, kind: str, fingerprint: str, stale_after_s: float = STALE_AFTER_S
    ) -> Run | None:
        """The newest run of this kind and fingerprint that was cut off and can be picked up.

        That is one marked 'interrupted', or one still marked 'running' whose process is gone or
        whose heartbeat is older than ``stale_after_s`` (a crash never gets to update its status).
        """
        candidates = self._select_runs(
            "kind = ? AND fingerprint = ? AND status IN ('interrupted', 'running')",
            (kind, fingerprint),
        )
        for run in candidates:
            if run.status == "interrupted" or not run_is_alive(run, stale_after_s):
                return run
        return None

    def claim(self, run_id: str, stale_after_s: float = STALE_AFTER_S, force: bool = False) -> Run:
        """Mark a run running in this process, e.g. to resume it; clears its previous error.

        Raises:
            BabysitterError: another live process is running it, so two jobs never share a folder
                (a launcher that created the run for a child process passes ``force=True``).
        """
        with self.connect(write=True) as conn:
            run = self._run_from_row(self._require(conn, run_id))
            if not force and run.pid != os.getpid() and run_is_alive(run, stale_after_s):
                raise BabysitterError(
                    f"Run {run_id} is already running in process {run.pid} (last heartbeat "
                    f"{run.heartbeat_at}). Wait for it to finish or stop that process first."
                )
            now = _now()
            conn.execute(
                "UPDATE runs SET status = 'running', pid = ?, heartbeat_at = ?, updated_at = ?,"
                " error = NULL WHERE id = ?",
                (os.getpid(), now, now, run_id),
            )
        self._journal(run_id, "status", status="running", pid=os.getpid(), job_id=_job_id())
        return self.get_run(run_id)

    def heartbeat(self, run_id: str) -> None:
        """Record that the run's process is still alive (see ``STALE_AFTER_S``)."""
        with self.connect(write=True) as conn:
            cur = conn.execute("UPDATE runs SET heartbeat_at = ? WHERE id = ?", (_now(), run_id))
            if cur.rowcount == 0:
                self._require(conn, run_id)

    def set_status(
        self,
        run_id: str,
        status: str,
        summary: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> None:
        """Change a run's status; ``summary``/``error`` replace the stored ones when given."""
        if status not in STATUSES:
            raise ValueError(f"Expected status in {STATUSES}. Received: {status!r}")
        summary_json = _dumps(summary) if summary is not None else None
        with self.connect(write=True) as conn:
            cur = conn.execute(
                "UPDATE runs SET status = ?, updated_at = ?,"
                " summary_json = COALESCE(?, summary_json), error = COALESCE(?, error)"
                " WHERE id = ?",
                (status, _now(), summary_json, error, run_id),
            )
            if cur.rowcount == 0:
                self._require(conn, run_id)
        self._journal(run_id, "status", status=status, summary=summary, error=error)

    @contextlib.contextmanager
    def tracking(self, run_id: str, resume: str = "run the same command again") -> Iterator[None]:
        """The run's end state, whatever ends the block early: train, search and check all end
        the same way. A Ctrl-C or a failed write (a full disk) leaves it interrupted, which
        ``resume`` picks up; any other error leaves it failed with its message; a diverged fit
        has stored itself. Completing is the caller's ``set_status(run_id, "completed", ...)``.
        On a full disk the status write may fail too: the user still sees the first error.
        """
        try:
            yield
        except TrainingDiverged:
            raise
        except (KeyboardInterrupt, WriteError) as error:
            why = "interrupted by the user" if isinstance(error, KeyboardInterrupt) else str(error)
            self._end(run_id, "interrupted", f"{why}; {resume} to resume")
            raise
        except BabysitterError as error:
            self._end(run_id, "failed", str(error))
            raise
        except Exception as error:
            self._end(run_id, "failed", f"{type(error).__name__}: {error}")
            raise

    def _end(self, run_id: str, status: str, error: str) -> None:
        with contextlib.suppress(BabysitterError, sqlite3.Error, OSError):
            self.set_status(run_id, status, error=error)

    def delete_run(self, run_id: str) -> None:
        """Remove a run's rows (epochs and findings cascade) and its folder."""
        with self.connect(write=True) as conn:
            self._require(conn, run_id)
            conn.execute("DELETE FROM runs WHERE id = ?", (run_id,))
        shutil.rmtree(self.run_dir(run_id), ignore_errors=True)

    # -- metrics, findings, events ------------------------------------------------------------

    def record_epoch(self, run_id: str, phase: str, epoch: int, metrics: dict[str, Any]) -> None:
        """Store one epoch's metrics; a resumed phase re-recording an epoch replaces it.

        Also counts as a heartbeat. The phase keeps the position of its first record, so a resumed
        phase 1 still lists before phase 2.
        """
        now = _now()
        with self.connect(write=True) as conn:
            self._require(conn, run_id)
            conn.execute(
                "INSERT INTO epochs (run_id, phase, epoch, seq, metrics_json, recorded_at)"
                " VALUES (?1, ?2, ?3, (SELECT COALESCE(MAX(seq), 0) + 1 FROM epochs"
                " WHERE run_id = ?1), ?4, ?5) ON CONFLICT (run_id, phase, epoch) DO UPDATE SET"
                " metrics_json = excluded.metrics_json, recorded_at = excluded.recorded_at",
                (run_id, phase, int(epoch), _dumps(metrics), now),
            )
            conn.execute(
                "UPDATE runs SET heartbeat_at = ?1, updated_at = ?1 WHERE id = ?2", (now, run_id)
            )
        self._journal(run_id, "epoch", phase=phase, epoch=int(epoch), metrics=metrics)

    def epochs(self, run_id: str) -> list[dict[str, Any]]:
        """``{"phase", "epoch", **metrics}`` per epoch; phases by first record, then by epoch."""
        with self.connect() as conn:
            rows = conn.execute(
                "SELECT phase, epoch, metrics_json,"
                " MIN(seq) OVER (PARTITION BY phase) AS phase_seq FROM epochs WHERE run_id = ?"
                " ORDER BY phase_seq, epoch",
                (run_id,),
            ).fetchall()
        return [
            {**json.loads(r["metrics_json"]), "phase": r["phase"], "epoch": r["epoch"]}
            for r in rows
        ]

    def add_findings(self, run_id: str, findings: list[Any]) -> None:
        """Append findings (dicts with ``check`` and ``status``, or Finding dataclasses)."""
        items = [dict(f) if isinstance(f, Mapping) else dataclasses.asdict(f) for f in findings]
        with self.connect(write=True) as conn:
            self._require(conn, run_id)
            (start,) = conn.execute(
                "SELECT COALESCE(MAX(seq), 0) FROM findings WHERE run_id = ?", (run_id,)
            ).fetchone()
            conn.executemany(
                "INSERT INTO findings (run_id, seq, check_id, status, finding_json)"
                " VALUES (?, ?, ?, ?, ?)",
                [
                    (
                        run_id,
                        start + i,
                        str(f.get("check", f.get("check_id", ""))),
                        str(f.get("status", "")),
                        _dumps(f),
                    )
                    for i, f in enumerate(items, 1)
                ],
            )
        self._journal(run_id, "findings", findings=items)

    def findings(self, run_id: str) -> list[dict[str, Any]]:
        """The run's findings as stored, in the order they were added."""
        with self.connect() as conn:
            rows = conn.execute(
                "SELECT finding_json FROM findings WHERE run_id = ? ORDER BY seq", (run_id,)
            ).fetchall()
        return [json.loads(r[0]) for r in rows]

    def append_event(self, run_id: str, event: dict[str, Any]) -> None:
        """Append one JSON line to the run's ``events.jsonl``, stamped ``time`` (UTC) unless given.

        One short ``write`` on an append-mode file, so lines from several processes do not mix.
        """
        line = _dumps({"time": _now(), **event}) + "\n"
        path = self.artifact(run_id, "events")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a", encoding="utf-8") as f:
                f.write(line)
        except OSError as error:
            raise StoreWriteError(
                f"Could not append to {path} ({error.strerror or error}). Free disk space or fix "
                "the folder's permissions, then run the same command again."
            ) from error

    def _journal(self, run_id: str, event: str, **fields: Any) -> None:
        """Mirror an index write into the run's ``events.jsonl``: the run folder is the record of
        what ran, and ``runs repair`` rebuilds a lost or damaged index by replaying it."""
        if not self.replaying:
            self.append_event(run_id, {"event": event, **fields})

    def events(self, run_id: str) -> list[dict[str, Any]]:
        """The run's events, oldest first; a line torn by a crash or that is not an object is
        skipped, and a journal that is a link or not a file reads as none, never fatal."""
        path = self.artifact(run_id, "events")
        if not path.exists():
            return []
        with contextlib.suppress(journal.UnreadableFile):
            return journal.parse(journal.read_text(path), path, checked=False)[0]
        return []
