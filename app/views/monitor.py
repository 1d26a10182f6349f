"""Monitor: a live view of one job and its run (progress, curves, gap, findings, trials).

A failure comes first (the job's error line, or its run's error), then the job and its run; a
search is followed through its head trials and then each top-K fine-tune.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from app.analysis import (
    PERCENT_FORMAT,
    command_settings,
    finding_settings,
    finetune_progress,
    finished_gate,
    gap_text,
    gate_status,
    job_error,
    percent_points,
    search_progress,
    shown_job_status,
    shown_run_status,
    train_progress,
    trial_rows,
)
from app.charts import curves_chart, gap_chart
from app.common import pick_run, show_run_findings, store, warn_unreadable
from training import jobs
from training.babysit.advice import in_app_words
from training.errors import BabysitterError
from training.store import Run, RunStore, shown_status
from training.store.trials import trials

REFRESH_S = 2.0
PHASES = {"head": "head", "finetune": "fine-tune"}
PERCENTS = {
    name: st.column_config.NumberColumn(format=PERCENT_FORMAT)
    for name in ("train accuracy", "val accuracy", "val_accuracy")
}


def linked_run(s: RunStore, job: jobs.Job) -> Run | None:
    if job.run_id is None:
        return None
    try:
        return s.get_run(job.run_id)
    except BabysitterError:
        return None


def job_controls(s: RunStore, job: jobs.Job, run: Run | None) -> bool:
    """The job's error first when it failed, then its line, command, Cancel/Resume and log.
    Returns whether an error was shown (the run's own is then not repeated)."""
    log = jobs.log_tail(job)
    error = job_error(job, run, log)
    if error:
        settings = finding_settings(s, run) if run is not None else command_settings(job.command)
        text = in_app_words(error, settings)
        st.error(f"**Job {job.id} failed:** {text}", icon=":material/error:")
    status = shown_job_status(job, run, s.findings(run.id) if finished_gate(run) else ())
    code = f" · exit code {job.exit_code}" if error and job.exit_code is not None else ""
    st.markdown(f"**Job {job.id}** · {job.kind} · `{status}`{code}")
    st.code(job.command_line, language="bash", wrap_lines=True)
    left, right = st.columns(2)
    if job.status == "running" and left.button(
        "Cancel", key=f"cancel-{job.id}", icon=":material/stop:"
    ):
        with st.spinner("Stopping…"):
            jobs.cancel(s, job.id)
        st.rerun()
    if jobs.can_resume(job, run) and right.button(
        "Resume", key=f"resume-{job.id}", icon=":material/play_arrow:"
    ):
        try:
            new = jobs.resume(s, job.id)
        except BabysitterError as error:
            st.error(str(error))
        else:
            st.session_state["job_id"] = st.session_state["follow_job"] = new.id
            st.rerun()
    with st.expander("Log", expanded=bool(error) and run is None):
        st.code(log[-6000:] or "(empty)", language=None, wrap_lines=True)
    return error is not None


def progress_bar(done: float, planned: float, text: str) -> None:
    st.progress(min(done / planned, 1.0) if planned else 0.0, text=text)


def search_view(s: RunStore, run: Run) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Both parts of a search's progress (head trials, then the top-K fine-tunes); the curves of
    what runs now: the current fine-tune (or the one a stop cut off), else the best fine-tune
    once done, else the latest head trial. Returns those epochs and the trials."""
    p = search_progress(s, run.id)
    progress_bar(
        p["done"],
        p["planned"],
        f"Head search: trials {p['done']} / {p['planned']} · stage {p['stage']} of {p['stages']}"
        + (f" · {p['failed']} failed" if p["failed"] else ""),
    )
    tunes = finetune_progress(s, run)
    epochs = finetune_view(s, run, tunes)
    found = trials(s, run.id)
    if epochs is None and found:
        st.caption("Curves of the latest head trial: " + found[-1]["trial_id"])
        epochs = [{**e, "phase": "head"} for e in found[-1]["history"]]
    return epochs or [], found


def finetune_view(s: RunStore, run: Run, tunes: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The fine-tune bar and table; the epochs to draw, or None while no fine-tune has any. A
    fine-tune reads as in progress only while its search runs: a cancelled one says so."""
    if not tunes["planned"]:
        return None
    done, current, child = len(tunes["done"]), tunes["current"], tunes["run"]
    epochs = s.epochs(child.id) if child is not None else []
    part = train_progress(child, epochs) if child is not None else None
    text = f"Fine-tunes {done} / {tunes['planned']} done"
    status = shown_status(run)
    if current is not None:
        text += f" · #{current.get('rank', done + 1)} (trial {current.get('trial_id')}): "
        if part:
            text += f"epoch {part['done']} / {part['planned']}, "
            text += PHASES.get(part["phase"], part["phase"])
        else:
            text += "preparing the data" if status == "running" else "no epoch yet"
        text += "" if status == "running" else f" · {stopped_word(status)}"
    elif done == 0:
        text += " · they start after the head search"
    fraction = part["done"] / part["planned"] if part and part["planned"] else 0.0
    progress_bar(done + fraction, tunes["planned"], text)
    if tunes["done"]:
        st.dataframe(finetune_rows(tunes["done"]), hide_index=True, column_config=PERCENTS)
    if child is not None and epochs:
        st.caption(f"Curves of {fine_tune_words(child)}: run {child.id}")
        return epochs
    best = (run.summary or {}).get("best_run")
    if current is None and best:
        st.caption(f"Curves of the best fine-tune: run {best}")
        return s.epochs(best)
    return None


def fine_tune_words(child: Run) -> str:
    """The fine-tune whose curves are shown, by its run's status: "in progress" only while it
    runs (a cancelled or killed job leaves it interrupted, never in progress)."""
    status = shown_status(child)
    if status == "running":
        return "the fine-tune in progress"
    return f"the {stopped_word(status)} fine-tune"


def stopped_word(status: str) -> str:
    """A status that is not running, as a word: a cancelled run was interrupted (resumable)."""
    return "interrupted" if status == "cancelled" else status


def finetune_rows(done: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "trial": e.get("trial_id"),
            "train accuracy": percent_points(e.get("train_accuracy")),
            "val accuracy": percent_points(e.get("val_accuracy")),
            "run": e.get("run_id"),
            "error": e.get("error") or "",
        }
        for e in done
    ]


def run_view(s: RunStore, run_id: str, error_shown: bool = False) -> None:
    try:
        run = s.get_run(run_id)
    except BabysitterError as error:
        st.error(str(error))
        return
    findings = s.findings(run.id)
    settings = finding_settings(s, run)
    if run.error and not error_shown:
        box = st.error if shown_status(run) == "failed" else st.warning
        box(in_app_words(run.error, settings))
    st.markdown(f"**{run.id} · {run.kind} · {shown_run_status(run, findings)}**")
    found: list[dict[str, Any]] = []
    if run.kind == "search":
        epochs, found = search_view(s, run)
    elif run.kind == "check":
        gate_view(run, findings)
        epochs = []
    else:
        epochs = s.epochs(run.id)
        p = train_progress(run, epochs)
        progress_bar(
            p["done"],
            p["planned"],
            f"Epochs {p['done']} / {p['planned']} · phase {PHASES.get(p['phase'], p['phase'])}",
        )
    if epochs:
        a, b = st.columns(2)
        a.altair_chart(curves_chart(epochs, "loss"), width="stretch")
        b.altair_chart(curves_chart(epochs, "accuracy"), width="stretch")
        st.markdown(f"**Accuracy gap (train − val)** · {gap_text(run.summary)}")
        st.altair_chart(gap_chart(epochs, (run.summary or {}).get("gap")), width="stretch")
    else:
        st.caption("No epochs recorded yet.")
    if found:
        st.markdown("**Trials** (failed and exploded trials say so in status)")
        st.dataframe(trial_rows(found), hide_index=True, column_config=PERCENTS)
    st.markdown("**Findings**")
    show_run_findings(s, run, findings)


def gate_view(run: Run, findings: list[dict[str, Any]]) -> None:
    """A gate's verdict and its failed checks, named, above the findings."""
    st.caption("Sanity gate: initial loss, regularization, overfitting 20 images, LR range.")
    if not finished_gate(run):
        return
    failed = [f.get("check") for f in findings if f.get("status") == "fail"]
    if failed:
        st.error(f"{gate_status(run, findings)} ({', '.join(failed)})", icon=":material/error:")
    else:
        st.success(gate_status(run, findings), icon=":material/check_circle:")


st.title("Monitor")
s = store()
warn_unreadable(s)
all_jobs = jobs.refresh(s)
runs = s.list_runs()
if "follow_job" in st.session_state:
    st.session_state["follow"] = "Job"
# Jobs first while one runs (following it is what this page is for); otherwise a run chosen on
# another page (Runs, Results) is the one shown, and an old job never replaces that choice.
chosen_run = st.session_state.get("run_id") in {r.id for r in runs}
running = any(j.status == "running" for j in all_jobs)
on_jobs = bool(all_jobs) and (running or not chosen_run)
mode = st.radio("Follow", ["Job", "Run"], horizontal=True, key="follow", index=0 if on_jobs else 1)

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


def no_run_yet(s: RunStore, job: jobs.Job, error_shown: bool) -> None:
    """A job without its run yet: a resumed one shows the run it resumes meanwhile (its command
    links the run only once started, a minute or more); else why there is none."""
    earlier = jobs.resumed_from(job) if job.status == "running" else None
    if earlier is not None:
        st.caption(f"Resuming job {earlier['job']} (run {earlier['run']}) …")
        st.session_state["run_id"] = earlier["run"]
        run_view(s, earlier["run"], error_shown)
    elif job.status == "running":
        st.caption("The job has not created a run yet.")
    elif not error_shown:
        st.caption(f"The job ended ({job.status}) before creating a run.")


@st.fragment(run_every=REFRESH_S)
def live(job_id: int | None, run_id: str | None) -> None:
    s = store()
    if job_id is not None:
        jobs.refresh(s)
        job = jobs.get_job(s, job_id)
        run = linked_run(s, job)
        error_shown = job_controls(s, job, run)
        if run is None:
            no_run_yet(s, job, error_shown)
            return
        st.session_state["run_id"] = run.id  # Results and Command center open the job's run
        run_view(s, run.id, error_shown)
        return
    run_view(s, run_id)


live(st.session_state.get("job_id") if mode == "Job" else None, run_id)
