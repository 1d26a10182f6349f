"""``$BABYSITTER_JOB_ID``: the app's job a process runs for (set by training/jobs.py), read
strictly: ``str.isdigit()`` accepts "²" and 5,000 digits, which ``int`` then refuses with a
traceback, so only a bounded run of ASCII digits is a job id."""

from __future__ import annotations

import functools
import os
import re
import sys

JOB_ENV = "BABYSITTER_JOB_ID"
_JOB_ID_RE = re.compile(r"[0-9]{1,18}")  # below 2**63, the most an index row id can be


def parse_job_id(raw: str) -> int | None:
    """A job id (a positive row id of the index) written in ASCII digits; None for anything else."""
    return int(raw) if _JOB_ID_RE.fullmatch(raw) and int(raw) > 0 else None


def job_id_from_env() -> int | None:
    """The app's job this process runs for (``BABYSITTER_JOB_ID``, set by training/jobs.py), so
    the job-to-run link is written by the run, never guessed. A value that is no job id is
    ignored with one warning: the run goes on, only the link to a job is lost."""
    raw = os.environ.get(JOB_ENV, "")
    job_id = parse_job_id(raw)
    if raw and job_id is None:
        _warn_bad_job_id(raw)
    return job_id


@functools.cache
def _warn_bad_job_id(raw: str) -> None:
    print(
        f"warning: ${JOB_ENV}={raw!r:.40} is not a job id (ASCII digits); ignored",
        file=sys.stderr,
    )
