"""Runs: every run and job in the store, newest first; a failed job shows why beside it, and a
run opens on the page that reads it."""

from __future__ import annotations

from typing import Any

import streamlit as st

from app.analysis import (
    command_settings,
    finding_settings,
    finished_gate,
    job_error,
    percent,
    shown_job_status,
    shown_run_status,
)
from app.common import has_results, store, warn_unreadable
from training import jobs
from training.babysit.advice import in_app_words
from training.store import Run, RunStore

ERROR_WIDTH = 240
NONE = "–"
"""What an empty cell shows (a grid would print a missing value as "None")."""


def gate_findings(s: RunStore, run: Run | None) -> list[dict]:
    """A finished gate's findings (its status counts them); nothing for other runs."""
    return s.findings(run.id) if finished_gate(run) else []


def _cells(row: dict[str, Any]) -> dict[str, Any]:
    """The row with every missing value shown as a dash."""
    return {name: NONE if value is None else value for name, value in row.items()}


def run_row(s: RunStore, run: Run) -> dict[str, Any]:
    backbone = run.config.get("backbone") or ",".join(run.config.get("backbones") or [])
    val = (run.summary or {}).get("val") or {}
    return _cells(
        {
            "id": run.id,
            "kind": run.kind,
            "backbone": backbone or None,
            "status": shown_run_status(run, gate_findings(s, run)),
            "val accuracy": percent(val.get("accuracy")),
            "gap": percent((run.summary or {}).get("gap"), signed=True),
            "created": run.created_at[:19].replace("T", " "),
            "dataset": run.dataset,
        }
    )


def job_row(s: RunStore, job: jobs.Job, run: Run | None) -> dict[str, Any]:
    error = job_error(job, run, jobs.log_tail(job)) or ""
    settings = finding_settings(s, run) if run is not None else command_settings(job.command)
    error = in_app_words(error, settings)
    return _cells(
        {
            "job": job.id,
            "kind": job.kind,
            "status": shown_job_status(job, run, gate_findings(s, run)),
            "error": error if len(error) <= ERROR_WIDTH else error[: ERROR_WIDTH - 1] + "…",
            "run": job.run_id,
            "started": job.created_at[:19].replace("T", " "),
            "command": job.command_line,
        }
    )


def open_run(run: Run) -> None:
    """Open a clicked run where it reads best: Results once it completed with a model, else
    Monitor on that run (its curves so far, its findings, why it stopped)."""
    st.session_state["run_id"] = run.id
    if has_results(run):
        st.switch_page("views/results.py")
    st.session_state.pop("follow_job", None)  # a job Launch started would be shown instead
    st.session_state["follow"] = "Run"
    st.switch_page("views/monitor.py")


def no_runs() -> None:
    """The empty store: where to start, as links."""
    st.info("No runs yet: add a dataset, then launch a search or a training run.")
    st.page_link("views/datasets.py", label="Add a dataset", icon=":material/photo_library:")
    st.page_link("views/launch.py", label="Launch", icon=":material/rocket_launch:")


st.title("Runs")
s = store()
warn_unreadable(s)
found = jobs.refresh(s)
runs = s.list_runs()
by_id = {r.id: r for r in runs}
st.caption(f"Run store: `{s.home}` ({len(runs)} runs)")
if not runs:
    no_runs()
else:
    st.caption("Click a row to open its run: Results once it completed, Monitor otherwise.")
    picked = st.dataframe(
        [run_row(s, r) for r in runs],
        hide_index=True,
        key="runs_table",
        on_select="rerun",
        selection_mode="single-row",
        column_config={
            "val accuracy": st.column_config.TextColumn(alignment="right"),
            "gap": st.column_config.TextColumn(
                "gap (train − val)",
                help="Inference-mode training accuracy minus validation accuracy, after training",
                alignment="right",
            ),
        },
    )
    if picked.selection.rows:
        open_run(runs[picked.selection.rows[0]])
if found:
    st.subheader("Jobs")
    st.dataframe(
        [job_row(s, j, by_id.get(j.run_id)) for j in found],
        hide_index=True,
        column_config={"error": st.column_config.TextColumn(width="large")},
    )
