"""The run store: the only code that opens the index or builds paths inside the home folder.

``RunStore`` is the entry point (runs, epochs, findings, events, paths); ``trials`` holds a
search's trials and stages, ``jobs`` the app's job rows, ``repair`` rebuilds a lost index from the
run folders, and ``report`` formats runs for the CLI. The layout on disk is described in
:mod:`training.store.layout`.
"""

from training.store.database import DB_NAME, DEFAULT_HOME, HOME_VARIABLE, SCHEMA_VERSION
from training.store.layout import ARTIFACTS, Layout, run_folders
from training.store.runs import (
    KINDS,
    STALE_AFTER_S,
    STATUSES,
    Run,
    RunStore,
    pid_alive,
    run_is_alive,
    shown_status,
)

__all__ = [
    "ARTIFACTS",
    "DB_NAME",
    "DEFAULT_HOME",
    "HOME_VARIABLE",
    "KINDS",
    "SCHEMA_VERSION",
    "STALE_AFTER_S",
    "STATUSES",
    "Layout",
    "Run",
    "RunStore",
    "pid_alive",
    "run_folders",
    "run_is_alive",
    "shown_status",
]
