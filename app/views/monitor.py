"""Monitor: a live view of one job and its run (progress, curves, gap, findings, trials)."""

from __future__ import annotations

import streamlit as st

from app.analysis import search_progress, train_progress, trial_rows
from app.charts import curves_chart, gap_chart
from app.common import pick_run, run_label, show_findings, store
from training import jobs
from training.errors import BabysitterError
from training.runs import RunStore
from training.trials import trials

REFRESH_S = 2.0


def job_controls(s: RunStore, job: jobs.Job) -> None:
    st.markdown(
        f"**Job {job.id}** · {job.kind} · `{job.status}`"
        + (f" · exit code {job.exit_code}" if job.exit_code is not None else "")
    )
    st.code(job.command_line, language="bash")
    left, right = st.columns(2)
    if job.status == "running" and left.button(
        "Cancel", key=f"cancel-{job.id}", icon=":material/stop:"
    ):
        with st.spinner("Stopping…"):
            jobs.cancel(s, job.id)
        st.rerun()
    if job.resumable and right.button(
        "Resume", key=f"resume-{job.id}", icon=":material/play_arrow:"
    ):
        try:
            new = jobs.resume(s, job.id)
        except BabysitterError as error:
            st.error(str(error))
        else:
            st.session_state["job_id"] = st.session_state["follow_job"] = new.id
            st.rerun()
    with st.expander("Log"):
        st.code(jobs.log_tail(job)[-6000:] or "(empty)", language=None)


def run_view(s: RunStore, run_id: str) -> None:
    try:
        run = s.get_run(run_id)
    except BabysitterError as error:
        st.error(str(error))
        return
    st.markdown(f"**{run_label(run)}**")
    if run.error:
        st.error(run.error)
    if run.kind == "search":
        p = search_progress(s, run.id)
        st.progress(
            min(p["done"] / p["planned"], 1.0) if p["planned"] else 0.0,
            text=f"Trials {p['done']} / {p['planned']} · stage {p['stage']} of {p['stages']}"
            + (f" · {p['failed']} failed" if p["failed"] else ""),
        )
        found = trials(s, run.id)
        if found:
            last = found[-1]
            st.caption("Curves of the latest trial: " + last["trial_id"])
            epochs = [{**e, "phase": "head"} for e in last["history"]]
        else:
            epochs = []
        finetunes = (run.summary or {}).get("finetuned") or []
        if finetunes:
            st.caption(f"{len(finetunes)} configuration(s) fine-tuned in full.")
    elif run.kind == "check":
        st.caption("Sanity gate: initial loss, regularization, overfitting 20 images, LR range.")
        epochs, found = [], []
    else:
        epochs = s.epochs(run.id)
        p = train_progress(run, epochs)
        st.progress(
            min(p["done"] / p["planned"], 1.0) if p["planned"] else 0.0,
            text=f"Epochs {p['done']} / {p['planned']} · phase {p['phase']}",
        )
        found = []
    if epochs:
        a, b = st.columns(2)
        a.altair_chart(curves_chart(epochs, "loss"), width="stretch")
        b.altair_chart(curves_chart(epochs, "accuracy"), width="stretch")
        st.markdown("**Accuracy gap (train − val) over epochs**")
        st.altair_chart(gap_chart(epochs), width="stretch")
    else:
        st.caption("No epochs recorded yet.")
    if found:
        st.markdown("**Trials** (failed and exploded trials in red)")
        rows = trial_rows(found)
        st.dataframe(
            [{**r, "failed": "💥" if r["status"] != "completed" else ""} for r in rows],
            hide_index=True,
        )
    st.markdown("**Findings**")
    show_findings(s.findings(run.id))


st.title("Monitor")
s = store()
all_jobs = jobs.refresh(s)
runs = s.list_runs()
if "follow_job" in st.session_state:
    st.session_state["follow"] = "Job"
mode = st.radio("Follow", ["Job", "Run"], horizontal=True, key="follow", index=0 if all_jobs else 1)

run_id = None
if mode == "Job":
    if not all_jobs:
        st.info("No jobs yet: start one on the Launch page.")
        st.stop()
    ids = [j.id for j in all_jobs]
    if st.session_state.get("follow_job") in ids:  # set by Launch or Resume: show that job
        st.session_state["job_pick"] = st.session_state.pop("follow_job")
    wanted = st.session_state.get("job_id")
    chosen = st.selectbox(
        "Job",
        ids,
        index=ids.index(wanted) if wanted in ids else 0,
        key="job_pick",
        # No status in the label: the live part below refreshes, this box would keep a stale one.
        format_func=lambda i: (
            f"#{i} · {all_jobs[ids.index(i)].kind} · started "
            + all_jobs[ids.index(i)].created_at[:16].replace("T", " ")
        ),
    )
    st.session_state["job_id"] = chosen
else:
    run = pick_run(runs, key="monitor_run", with_status=False)
    if run is None:
        st.info("No runs yet.")
        st.stop()
    run_id = run.id


@st.fragment(run_every=REFRESH_S)
def live(job_id: int | None, run_id: str | None) -> None:
    s = store()
    if job_id is not None:
        jobs.refresh(s)
        job = jobs.get_job(s, job_id)
        job_controls(s, job)
        run_id = job.run_id
        if run_id is None:
            st.caption("The job has not created a run yet.")
            return
        st.session_state["run_id"] = run_id  # Results and Command center open the job's run
    run_view(s, run_id)


live(st.session_state.get("job_id") if mode == "Job" else None, run_id)
