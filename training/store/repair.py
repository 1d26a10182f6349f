"""``runs repair``: rebuild the run index (the SQLite file) from the run folders.

Each run folder is the record of what ran: ``config.json`` and ``events.jsonl``, into which the
store mirrors every index write (created, status, epoch, findings, trial, stage). So a store file
that was deleted, emptied or damaged loses nothing but the index: repair keeps the damaged file
beside it as ``babysitter.sqlite.corrupt-<time>`` and replays every folder into a fresh one. A
healthy index is kept and folders it does not list are added; rows it holds but cannot read are
replaced from their folders (a row with no folder is removed), after a copy of the index is kept
the same way. The app's job list (processes it started) is not rebuilt: those are not runs, and
their logs stay under ``jobs/``.

The folders are read as files anyone could have edited (:mod:`training.store.journal`): a bad
journal line is skipped with its file and line named, a symbolic link is never followed, and each
run is replayed in one transaction, all or nothing.

Folders from before the journal (no ``created`` event) are rebuilt from their config and their
last ``completed`` event; their fingerprint is unknown, so they are not offered for resuming.
"""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from training.store import journal, trials
from training.store.database import DB_NAME, _dumps
from training.store.layout import ARTIFACTS, scan_runs
from training.store.runs import RunStore

SIDE_FILES = ("", "-wal", "-shm")
CONFIG_BYTES = 16 * 2**20
REPLAY_ERRORS = (ValueError, TypeError, KeyError, OverflowError, RecursionError, sqlite3.Error)
"""What a damaged folder raises while replayed: that run is skipped, named; the rest go on."""


@dataclass
class RepairReport:
    """What ``repair`` found and did, for the CLI's text and ``--json``."""

    index: Path
    state: str
    kept: list[Path] = field(default_factory=list)
    rebuilt: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)
    """Rows the index held but could not read, replaced from their folders (also in rebuilt)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": str(self.index),
            "state": self.state,
            "kept": [str(p) for p in self.kept],
            "rebuilt": self.rebuilt,
            "repaired": self.repaired,
            "skipped": self.skipped,
        }


def index_state(home: Path) -> str:
    """``healthy``, ``missing``, ``empty`` or ``damaged (<reason>)`` for the index in ``home``."""
    db = home / DB_NAME
    if not db.exists():
        return "missing"
    wal = db.with_name(DB_NAME + "-wal")
    if db.stat().st_size == 0 and not (wal.exists() and wal.stat().st_size > 0):
        return "empty"
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            verdict = conn.execute("PRAGMA integrity_check").fetchone()[0]
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        finally:
            conn.close()
    except sqlite3.Error as error:
        return f"damaged ({error})"
    if verdict != "ok":
        return f"damaged ({verdict})"
    if "runs" not in tables:
        return "damaged (no runs table)"
    return "healthy"


def repair(home: Path | str | None = None) -> RepairReport:
    """Rebuild the index at ``home`` (default ``$BABYSITTER_HOME``) from its run folders."""
    home = RunStore.resolve_home(home)
    state = index_state(home)
    report = RepairReport(index=home / DB_NAME, state=state)
    if state != "healthy":
        report.kept = _keep_aside(home / DB_NAME)
    store = RunStore(home, expect_index=False)
    store.replaying = True
    damaged = store.unreadable_runs()
    if damaged:
        shown = ", ".join(f"{run_id!r:.80}" for run_id in damaged)
        report.state = f"damaged: {len(damaged)} row(s) could not be read ({shown})"
        report.kept = [_copy_aside(store)]
    with store.connect() as conn:
        indexed = {r[0] for r in conn.execute("SELECT id FROM runs")} - set(damaged)
    folders, links = scan_runs(home)
    report.skipped += [f"{link}: a symbolic link, not followed" for link in links]
    for folder in folders:
        if folder.name not in indexed:
            _rebuild(store, folder, report, replace=folder.name in damaged)
    for run_id in set(damaged) - {f.name for f in folders}:
        with store.transaction() as conn:
            conn.execute("DELETE FROM runs WHERE id = ?", (run_id,))
        report.skipped.append(
            f"the row {run_id!r:.80}: no run folder to rebuild it from, so it was removed from "
            f"the index (the copy {report.kept[0]} keeps it)"
        )
    return report


def _rebuild(store: RunStore, folder: Path, report: RepairReport, replace: bool) -> None:
    """Replay one folder in one transaction (replacing its unreadable row); a folder that
    cannot be replayed leaves the index as it was and is named."""
    try:
        with store.transaction() as conn:
            if replace:
                conn.execute("DELETE FROM runs WHERE id = ?", (folder.name,))
            problems = _replay(store, folder)
    except REPLAY_ERRORS as error:
        report.skipped.append(f"{folder}: {error}")
        return
    report.skipped += problems
    report.rebuilt.append(folder.name)
    if replace:
        report.repaired.append(folder.name)


def _stamp(db: Path) -> str:
    """``<UTC time>``, made unique: a second repair within the same second never overwrites the
    first's file."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    taken = {p.name for p in db.parent.glob(f"{db.name}.corrupt-{stamp}*")}
    return stamp + (f"-{len(taken) + 1}" if taken else "")


def _keep_aside(db: Path) -> list[Path]:
    """Move the index and its WAL files to ``*.corrupt-<time>`` so nothing is deleted."""
    stamp = _stamp(db)
    kept = []
    for suffix in SIDE_FILES:
        path = db.with_name(db.name + suffix)
        if path.exists():
            target = path.with_name(f"{db.name}.corrupt-{stamp}{suffix}")
            path.rename(target)
            kept.append(target)
    return kept


def _copy_aside(store: RunStore) -> Path:
    """A copy of the index as it is (SQLite's backup: consistent, WAL included), kept as
    ``*.corrupt-<time>`` before repair replaces or removes rows it cannot read."""
    target = store.db_path.with_name(f"{DB_NAME}.corrupt-{_stamp(store.db_path)}")
    copy = sqlite3.connect(target)
    try:
        with store.connect() as conn:
            conn.backup(copy)
    finally:
        copy.close()
    return target


def _read_config(path: Path) -> dict[str, Any]:
    try:
        config = json.loads(journal.read_text(path, CONFIG_BYTES))
    except (ValueError, RecursionError) as error:
        raise ValueError(f"{path} cannot be read ({str(error)[:120]})") from None
    if not isinstance(config, dict):
        raise ValueError(f"{path} does not hold an object")
    return config


def _replay(store: RunStore, folder: Path) -> list[str]:
    """Insert one run's row and replay its journaled epochs, findings, trials and stages; the
    journal lines skipped, each named."""
    run_id = folder.name
    config_path, events_path = folder / ARTIFACTS["config"], folder / ARTIFACTS["events"]
    config = _read_config(config_path)
    events, problems = [], []
    if os.path.lexists(events_path):
        events, problems = journal.parse(journal.read_text(events_path), events_path)
    created = next((e for e in events if e.get("event") == "created"), {})
    kind = created.get("kind") or ("search" if "backbones" in config else "train")
    label = (
        created.get("label")
        or "+".join(config.get("backbones") or [])
        or config.get("backbone", kind)
    )
    created_at = created.get("created_at") or (events[0]["time"] if events else _mtime(config_path))
    status, pid, summary, error = _last_status(events, created.get("pid"))
    updated_at = events[-1]["time"] if events else created_at
    with store.connect(write=True) as conn:
        conn.execute(
            "INSERT INTO runs (id, kind, label, status, created_at, updated_at, heartbeat_at,"
            " pid, fingerprint, dataset, config_json, summary_json, error)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                run_id,
                kind,
                str(label),
                status,
                created_at,
                updated_at,
                updated_at,
                pid,
                created.get("fingerprint") or "",
                created.get("dataset") or str(config.get("data", "")),
                _dumps(config),
                _dumps(summary) if summary is not None else None,
                error,
            ),
        )
    for event in events:
        _replay_event(store, run_id, event)
    with store.connect(write=True) as conn:  # replayed epochs stamped now; keep the record's
        conn.execute(
            "UPDATE runs SET updated_at = ?1, heartbeat_at = ?1 WHERE id = ?2", (updated_at, run_id)
        )
    return problems


def _last_status(events: list[dict], pid: int | None) -> tuple[str, Any, Any, Any]:
    """The run's last journaled status (``running`` with its pid when it never ended, which
    shows as interrupted once that process is gone), its summary and error."""
    status, summary, error = "running", None, None
    for event in events:
        kind = event.get("event")
        if kind == "status":
            status = event["status"]
            pid = event.get("pid", pid)
            summary = event.get("summary") if event.get("summary") is not None else summary
            error = event.get("error") if event.get("error") is not None else error
        elif kind == "completed":  # written by train and search since before the journal
            status, summary = "completed", event.get("summary", summary)
    return status, pid, summary, error


def _replay_event(store: RunStore, run_id: str, event: dict) -> None:
    kind = event.get("event")
    if kind == "epoch":
        store.record_epoch(run_id, event["phase"], event["epoch"], event["metrics"])
    elif kind == "findings":
        store.add_findings(run_id, event["findings"])
    elif kind == "trial":
        fields = ("trial_id", "stage", "status", "hyperparameters", "score", "history", "seconds")
        trials.record_trial(store, run_id, *(event[f] for f in fields), event.get("error"))
    elif kind == "stage":
        trials.record_stage(store, run_id, event["stage"], event["space"], event["trials"])


def _mtime(path: Path) -> str:
    return datetime.fromtimestamp(path.lstat().st_mtime, UTC).isoformat(timespec="microseconds")
