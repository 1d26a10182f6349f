"""Jobs: real detached CLI processes, their exit codes, cancel, resume, and two at once."""

from __future__ import annotations

import os
import signal
import sqlite3
import time

import pytest

from training import jobs
from training.errors import BabysitterError
from training.runs import RunStore


def wait_for(predicate, timeout: float = 120.0, step: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError("timed out waiting")


def finished(store: RunStore, job_id: int, timeout: float = 120.0) -> jobs.Job:
    def done():
        jobs.refresh(store)
        job = jobs.get_job(store, job_id)
        return job if job.status != "running" else None

    return wait_for(done, timeout)


@pytest.fixture
def store(babysitter_home):
    store = RunStore(babysitter_home)
    yield store
    for job in jobs.list_jobs(store, status="running"):  # a failed test leaves no process behind
        jobs.cancel(store, job.id, grace_s=5)


def test_audit_job_completes_with_exit_code_and_log(store, image_folder):
    job = jobs.start_job(store, ["training", "audit", str(image_folder)])
    assert job.status == "running" and job.pid
    assert job.kind == "training audit"
    assert job.command_line == f"python -m training audit {image_folder}"
    # Its own session: a signal to the app's process group does not reach it.
    assert os.getpgid(job.pid) == job.pid != os.getpgid(0)
    done = finished(store, job.id)
    assert done.status == "completed" and done.exit_code == 0
    assert "Verdict: TRAINABLE" in jobs.log_tail(done)
    assert done.log_path.parent == store.home / "jobs" / str(job.id)


def test_failing_command_is_failed_with_its_exit_code(store, tmp_path):
    job = jobs.start_job(store, ["training", "audit", str(tmp_path / "missing")])
    done = finished(store, job.id)
    assert done.status == "failed" and done.exit_code not in (0, None)
    assert "Dataset not found" in jobs.log_tail(done)


def test_only_our_cli_modules_can_be_started(store):
    with pytest.raises(BabysitterError, match="Expected a command starting with"):
        jobs.start_job(store, ["rm", "-rf", "/"])
    with pytest.raises(BabysitterError):
        jobs.start_job(store, ["training"])
    assert jobs.list_jobs(store) == []


def test_arguments_reach_the_command_verbatim_without_a_shell(store, tmp_path):
    odd = tmp_path / "a folder; echo pwned $(id)"
    job = jobs.start_job(store, ["training", "audit", str(odd)])
    done = finished(store, job.id)
    assert done.status == "failed"
    log = jobs.log_tail(done)
    assert "pwned $(id)" in log and "uid=" not in log


def test_two_jobs_at_once_keep_the_store_consistent(store, image_folder, tmp_path):
    from tests.imagegen import make_image_folder

    other = make_image_folder(tmp_path / "other", {"a": 5, "b": 5})
    first = jobs.start_job(store, ["training", "audit", str(image_folder)])
    second = jobs.start_job(store, ["training", "audit", str(other)])
    assert first.id != second.id
    a, b = finished(store, first.id), finished(store, second.id)
    assert a.status == b.status == "completed"
    with sqlite3.connect(store.db_path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert {j.id for j in jobs.list_jobs(store)} == {first.id, second.id}


@pytest.mark.slow
def test_cancel_a_long_train_job_then_resume_it(store, image_folder):
    args = ["training", "train", str(image_folder), "--backbone", "VGG16", "--weights", "none"]
    args += ["--image-size", "32", "--epochs-head", "5000", "--epochs-finetune", "0"]
    args += ["--batch-size", "8"]
    job = jobs.start_job(store, args)

    def linked_with_epochs():
        jobs.refresh(store)
        current = jobs.get_job(store, job.id)
        return current.run_id and store.epochs(current.run_id) and current

    running = wait_for(linked_with_epochs, timeout=180)
    run = store.get_run(running.run_id)
    assert run.kind == "train" and run.status == "running"

    cancelled = jobs.cancel(store, job.id, grace_s=20)
    assert cancelled.status == "cancelled"
    assert not jobs._group_alive(job.pid)
    assert store.get_run(run.id).status == "interrupted"
    assert cancelled.resumable

    again = jobs.resume(store, job.id)
    assert again.command == job.command and again.id != job.id
    resumed = wait_for(
        lambda: (jobs.refresh(store), jobs.get_job(store, again.id))[1].run_id and True,
        timeout=180,
    )
    assert resumed
    assert jobs.get_job(store, again.id).run_id == run.id  # the same run picked up
    assert jobs.cancel(store, again.id, grace_s=20).status == "cancelled"


@pytest.mark.slow
def test_a_vanished_job_is_interrupted(store, image_folder):
    args = ["training", "train", str(image_folder), "--backbone", "VGG16", "--weights", "none"]
    args += ["--image-size", "32", "--epochs-head", "5000", "--batch-size", "8"]
    job = jobs.start_job(store, args)
    time.sleep(1.0)
    os.killpg(job.pid, signal.SIGKILL)
    done = finished(store, job.id, timeout=30)
    assert done.status == "interrupted" and done.exit_code is None


def test_resume_adds_resume_flag_to_searches_only(store):
    search = jobs.Job(
        1,
        None,
        "tuner search",
        ["tuner", "search", "D", "--backbone", "VGG16"],
        1,
        "cancelled",
        store.home / "jobs/1/job.log",
        "",
        "",
        None,
    )
    assert jobs.resume_args(search)[-1] == "--resume"
    audit = jobs.Job(
        2,
        None,
        "training audit",
        ["training", "audit", "D"],
        1,
        "failed",
        store.home / "jobs/2/job.log",
        "",
        "",
        None,
    )
    assert not audit.resumable
    with pytest.raises(BabysitterError, match="cannot be resumed"):
        jobs.resume_args(audit)


def test_cancel_of_a_finished_job_changes_nothing(store, image_folder):
    job = jobs.start_job(store, ["training", "audit", str(image_folder)])
    done = finished(store, job.id)
    assert jobs.cancel(store, job.id).status == "completed" == done.status
