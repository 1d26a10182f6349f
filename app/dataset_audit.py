"""A dataset's audit as the pages read it: cached per path and modification time.

Datasets shows the report; Launch reads its verdict to refuse data that cannot train before a
job fails on it. The home's audit cache makes a second visit read no image.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from training.store import RunStore


@st.cache_data(show_spinner="Auditing images…", max_entries=16)
def audit_report(path: str, home: str, stamp: float):
    """The audit of a dataset folder or archive (``stamp``: its modification time, so a change
    of the folder audits again). Raises the project's errors for a path it cannot read."""
    from training.fit.prepare import audit_path

    s = RunStore(home)
    return audit_path(path, s.datasets_dir(), cache_dir=s.cache_dir())


def modified(path: str | Path) -> float:
    try:
        return Path(path).stat().st_mtime
    except OSError:
        return 0.0
