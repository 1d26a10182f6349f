"""The run index: one SQLite file, its schema and migrations, and short-lived connections.

Jobs are separate processes, so every call opens its own connection; writes take the write lock
up front (``BEGIN IMMEDIATE``) and wait up to ``busy_timeout`` for it. That is what keeps
concurrent writers from failing with "database is locked". A damaged file or a failed write is one
message (``StoreIndexError``, ``StoreWriteError``), never an SQLite traceback.

JSON columns are written with Python's default ``allow_nan=True``: a diverged loss is stored as
``NaN``/``Infinity`` and read back as the same float. That is not strict JSON; only Python reads
these columns, and anything exported for other tools must convert non-finite numbers itself.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from training.errors import BabysitterError, HomeError, StoreIndexError, StoreWriteError
from training.home import usable_home
from training.store.layout import run_folders

DEFAULT_HOME = "./babysitter-home"
HOME_VARIABLE = "BABYSITTER_HOME"
DB_NAME = "babysitter.sqlite"
BUSY_TIMEOUT_S = 30.0
REPAIR_HINT = (
    "Rebuild it from the run folders with `python -m training runs repair` (a damaged file is "
    "kept beside it as babysitter.sqlite.corrupt-<time>)."
)

# Forward migrations: MIGRATIONS[v] takes a store from user_version v to v + 1. Never edit a shipped
# entry; append a new one (trials and jobs become their own tables with run_id foreign keys).
# epochs.seq is an explicit insertion counter (rowids may be renumbered by VACUUM); a phase sorts
# by its first seq, which an upsert keeps.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE runs (
            id TEXT PRIMARY KEY, kind TEXT NOT NULL, label TEXT NOT NULL, status TEXT NOT NULL,
            created_at TEXT NOT NULL, updated_at TEXT NOT NULL, heartbeat_at TEXT, pid INTEGER,
            fingerprint TEXT NOT NULL, dataset TEXT NOT NULL, config_json TEXT NOT NULL,
            summary_json TEXT, error TEXT)""",
        "CREATE INDEX runs_fingerprint ON runs(kind, fingerprint, created_at)",
        "CREATE INDEX runs_created ON runs(created_at)",
        """CREATE TABLE epochs (
            run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE, phase TEXT NOT NULL,
            epoch INTEGER NOT NULL, seq INTEGER NOT NULL, metrics_json TEXT NOT NULL,
            recorded_at TEXT NOT NULL, PRIMARY KEY (run_id, phase, epoch))""",
        """CREATE TABLE findings (
            run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE, seq INTEGER NOT NULL,
            check_id TEXT NOT NULL, status TEXT NOT NULL, finding_json TEXT NOT NULL,
            PRIMARY KEY (run_id, seq))""",
    ),
    (
        # A search's trials (one row per Keras Tuner trial, id prefixed by its stage) and the
        # hyperparameter ranges each stage sampled from.
        """CREATE TABLE trials (
            run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE, trial_id TEXT NOT NULL,
            stage INTEGER NOT NULL, seq INTEGER NOT NULL, status TEXT NOT NULL,
            hyperparameters_json TEXT NOT NULL, score REAL, history_json TEXT NOT NULL,
            seconds REAL, error TEXT, recorded_at TEXT NOT NULL, PRIMARY KEY (run_id, trial_id))""",
        """CREATE TABLE stages (
            run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE, stage INTEGER NOT NULL,
            space_json TEXT NOT NULL, trials INTEGER NOT NULL, PRIMARY KEY (run_id, stage))""",
    ),
    (
        # Jobs: CLI processes started by the app (training/jobs.py); run_id is linked once the
        # job's process has created its run. exit_code is the child's status, NULL while running.
        """CREATE TABLE jobs (
            id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT, kind TEXT NOT NULL,
            command_json TEXT NOT NULL, pid INTEGER, status TEXT NOT NULL, log_path TEXT NOT NULL,
            created_at TEXT NOT NULL, updated_at TEXT NOT NULL, exit_code INTEGER)""",
        "CREATE INDEX jobs_created ON jobs(created_at)",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)


def _now() -> str:
    """ISO 8601 UTC with microseconds: sorts as text, so SQL can order by it."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _json_default(value: Any) -> Any:
    """Let NumPy scalars/arrays, paths and dataclasses through ``json.dumps``."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _dumps(value: Any, indent: int | None = None) -> str:
    return json.dumps(value, default=_json_default, indent=indent)


class Database:
    """The SQLite index under a home folder: checked, migrated, and opened per call.

    Args:
        home: Root folder. Defaults to ``$BABYSITTER_HOME`` or ``./babysitter-home``, read now, so
            a store made before the variable changes keeps its root.
        expect_index: Refuse to start a fresh index over existing run folders (``runs repair``
            passes False: it is rebuilding one).
    """

    def __init__(self, home: Path | str | None = None, *, expect_index: bool = True):
        self.home = self.resolve_home(home)
        self.db_path = self.home / DB_NAME
        # While `runs repair` replays run folders into a fresh index, nothing is journaled again.
        self.replaying = False
        self._held: sqlite3.Connection | None = None  # see transaction()
        try:
            (self.home / "runs").mkdir(exist_ok=True)
            if expect_index:
                self._check_index_present()
            self._migrate()
        except (OSError, sqlite3.Error) as error:
            raise HomeError(
                f"The run store in {self.home} cannot be opened or written "
                f"({type(error).__name__}: {error}). Check its permissions and free space, or "
                "point $BABYSITTER_HOME at another folder."
            ) from error

    @staticmethod
    def resolve_home(home: Path | str | None = None) -> Path:
        """``home``, else ``$BABYSITTER_HOME``, else ``./babysitter-home``; checked usable."""
        raw = home if home is not None else (os.environ.get(HOME_VARIABLE) or DEFAULT_HOME)
        return usable_home(Path(raw).expanduser().resolve())

    # -- connections and schema ---------------------------------------------------------------

    def _check_index_present(self) -> None:
        """Refuse to start a fresh index over run folders: a deleted or emptied store file would
        otherwise read as "No runs yet" while every run's folder and model are still there."""
        wal = self.db_path.with_name(DB_NAME + "-wal")
        if any(p.exists() and p.stat().st_size > 0 for p in (self.db_path, wal)):
            return
        folders = run_folders(self.home)
        if folders:
            state = "empty (0 bytes)" if self.db_path.exists() else "missing"
            raise StoreIndexError(
                f"The run index {self.db_path} is {state}, but {self.home / 'runs'} holds "
                f"{len(folders)} run folder(s). {REPAIR_HINT}"
            )

    def _storage_error(self, error: sqlite3.Error) -> BabysitterError | None:
        """A damaged file or a failed write as a message that says what to do; None for the rest
        (a programming error should still show its traceback)."""
        if type(error) is sqlite3.DatabaseError:  # SQLITE_CORRUPT / SQLITE_NOTADB
            return StoreIndexError(
                f"The run index {self.db_path} is damaged ({error}). {REPAIR_HINT}"
            )
        text = str(error).lower()
        if isinstance(error, sqlite3.OperationalError) and any(
            s in text for s in ("disk is full", "disk i/o", "readonly", "unable to open")
        ):
            return StoreWriteError(
                f"The run store {self.db_path} could not be written ({error}). Free disk space "
                "or fix the folder's permissions, then run the same command again: what was "
                "stored before is intact (each write is one transaction)."
            )
        return None

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction around several store calls, committed only if all succeed:
        ``runs repair`` replays a run all or nothing, so an error (or a kill) part-way through
        never leaves a half-replayed run that a second repair would take as indexed."""
        with self.connect(write=True) as conn:
            self._held = conn
            try:
                yield conn
            finally:
                self._held = None

    @contextlib.contextmanager
    def connect(self, write: bool = False) -> Iterator[sqlite3.Connection]:
        """A fresh connection; with ``write`` one IMMEDIATE transaction committed on success.
        Inside :meth:`transaction`, its connection and transaction instead. The store's modules
        (runs, trials, jobs, repair) reach the index only through here."""
        if self._held is not None:
            yield self._held
            return
        try:
            conn = sqlite3.connect(self.db_path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
            try:
                conn.row_factory = sqlite3.Row
                conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
                conn.execute("PRAGMA foreign_keys = ON")
                conn.execute("PRAGMA synchronous = NORMAL")
                if not write:
                    yield conn
                    return
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                except BaseException:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            finally:
                conn.close()
        except sqlite3.Error as error:
            converted = self._storage_error(error)
            if converted is None:
                raise
            raise converted from error

    def _migrate(self) -> None:
        with self.connect() as conn:
            conn.execute("PRAGMA journal_mode = WAL")
        with self.connect(write=True) as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise BabysitterError(
                    f"The run store {self.db_path} has schema version {version}, newer than this "
                    f"Babysitter understands ({SCHEMA_VERSION}). Upgrade Babysitter, or point "
                    "$BABYSITTER_HOME at another folder."
                )
            for step in MIGRATIONS[version:]:
                for statement in step:
                    conn.execute(statement)
            if version != SCHEMA_VERSION:
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
