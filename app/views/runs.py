"""Runs: every run and job in the store, newest first; a failed job shows why beside it."""

from __future__ import annotations

import streamlit as st

from app.analysis import (
    PERCENT_FORMAT,
    command_settings,
    finding_settings,
    finished_gate,
    job_error,
    percent_points,
    shown_job_status,
    shown_run_status,
)
from app.common import store
from training import jobs
from training.babysit.advice import in_app_words
from training.store import Run, RunStore

ERROR_WIDTH = 240


def gate_findings(s: RunStore, run: Run | None) -> list[dict]:
    """A finished gate's findings (its status counts them); nothing for other runs."""
    return s.findings(run.id) if finished_gate(run) else []


def job_row(s: RunStore, job: jobs.Job, run: Run | None) -> dict:
    error = job_error(job, run, jobs.log_tail(job)) or ""
    settings = finding_settings(s, run) if run is not None else command_settings(job.command)
    error = in_app_words(error, settings)
    return {
        "job": job.id,
        "kind": job.kind,
        "status": shown_job_status(job, run, gate_findings(s, run)),
        "error": error if len(error) <= ERROR_WIDTH else error[: ERROR_WIDTH - 1] + "…",
        "run": job.run_id,
        "started": job.created_at[:19].replace("T", " "),
        "command": job.command_line,
    }


st.title("Runs")
s = store()
found = jobs.refresh(s)
runs = s.list_runs()
by_id = {r.id: r for r in runs}
st.caption(f"Run store: `{s.home}` ({len(runs)} runs)")
if not runs:
    st.info("No runs yet. Add a dataset, then start a search on the Launch page.")
else:
    st.dataframe(
        [
            {
                "id": r.id,
                "kind": r.kind,
                "backbone": str(
                    r.config.get("backbone") or ",".join(r.config.get("backbones", []))
                ),
                "status": shown_run_status(r, gate_findings(s, r)),
                "val accuracy": percent_points((r.summary or {}).get("val", {}).get("accuracy")),
                "created": r.created_at[:19].replace("T", " "),
                "dataset": r.dataset,
            }
            for r in runs
        ],
        hide_index=True,
        column_config={"val accuracy": st.column_config.NumberColumn(format=PERCENT_FORMAT)},
    )
if found:
    st.subheader("Jobs")
    st.dataframe(
        [job_row(s, j, by_id.get(j.run_id)) for j in found],
        hide_index=True,
        column_config={"error": st.column_config.TextColumn(width="large")},
    )
