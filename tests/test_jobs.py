"""Jobs: real detached CLI processes, their exit codes, cancel, resume, and two at once; the
run each job made, as the run recorded it; logs without TensorFlow's start-up noise."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from training import jobs
from training.errors import BabysitterError
from training.job_log import copy_quietly
from training.store import RunStore


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


def zombie_children(pids: list[int]) -> list[int]:
    """Those of ``pids`` that are zombies whose parent is this process."""
    zombies = []
    for pid in pids:
        stat = jobs._proc_stat(pid)  # [state, ppid, ...]; None once reaped
        if stat and stat[0] == "Z" and int(stat[1]) == os.getpid():
            zombies.append(pid)
    return zombies


def ended(pid: int) -> bool:
    stat = jobs._proc_stat(pid)
    return stat is None or stat[0] == "Z"


def test_two_finished_jobs_leave_no_zombie_without_a_refresh(store, tmp_path):
    """The wrapper marks its own job finished before it exits, so nothing refreshes it again:
    only a reaper waiting for it keeps a ``<defunct>`` process from lingering under the app."""
    started = [
        jobs.start_job(store, ["training", "audit", str(tmp_path / f"gone{i}")]) for i in (1, 2)
    ]
    pids = [job.pid for job in started]
    wait_for(lambda: all(jobs.get_job(store, j.id).status != "running" for j in started))
    wait_for(lambda: all(ended(pid) for pid in pids))
    with contextlib.suppress(AssertionError):  # a moment for the reaper; a zombie stays
        wait_for(lambda: not zombie_children(pids), timeout=10)
    assert zombie_children(pids) == []
    assert [jobs.get_job(store, j.id).status for j in started] == ["failed", "failed"]


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


NOISE = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1796143142.764490   16664 port.cc:153] oneDNN custom operations are on.",
    "I0000 00:00:1796143142.764945   16664 cudart_stub.cc:31] Could not find cuda drivers on your"
    " machine, GPU will not be used.",
    "I0000 00:00:1796143142.916125   16664 cpu_feature_guard.cc:227] This TensorFlow binary is"
    " optimized to use available CPU instructions in performance-critical operations.",
    "To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow with"
    " the appropriate compiler flags.",
    "E0000 00:00:1732000000.123456   12345 cuda_executor.cc:1228] failed call to cuInit: INTERNAL:"
    " CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)",
    "2024-01-01 10:00:00.123456: I tensorflow/core/util/port.cc:113] oneDNN custom operations.",
]
KEPT = [
    "Phase 1: training the head for 2 epochs (backbone frozen).",
    "W0000 00:00:1.0  5 bfc_allocator.cc:10] Allocator ran out of memory",
    "error: Dataset not found: /data",
]


def test_the_log_keeps_every_line_but_tensorflows_start_up_noise(tmp_path):
    source, sink = os.pipe()
    text = "\n".join([NOISE[0], KEPT[0], *NOISE[1:], "1/5\r2/5\r", *KEPT[1:]]) + "\nlast"
    os.write(sink, text.encode())
    os.close(sink)
    out = tmp_path / "log"
    with out.open("wb") as log:
        copy_quietly(source, log.fileno())
    os.close(source)
    expected = f"{KEPT[0]}\n1/5\r2/5\r\n{KEPT[1]}\n{KEPT[2]}\nlast"
    assert out.read_bytes().decode() == expected  # carriage returns kept as they came


def test_the_wrapper_filters_noise_passes_the_job_id_and_keeps_the_exit_code(store):
    job_id = jobs.record_job(store, ["training", "audit", "/data"])
    code = (
        "import os, sys; "
        f"print({NOISE!r}[0], file=sys.stderr); print({NOISE!r}[2], flush=True); "
        "print('job', os.environ['BABYSITTER_JOB_ID'], flush=True); sys.exit(3)"
    )
    log = store.home / "jobs" / str(job_id) / jobs.LOG_NAME
    wrapper = [sys.executable, "-m", "training.jobs", "run", str(job_id), "--"]
    with log.open("wb") as out:
        subprocess.run(
            [*wrapper, sys.executable, "-c", code],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "BABYSITTER_HOME": str(store.home)},
            cwd=jobs.ROOT,
            timeout=60,
            check=False,
        )
    assert log.read_text() == f"job {job_id}\n"
    done = jobs.get_job(store, job_id)
    assert done.status == "failed" and done.exit_code == 3


def test_the_job_run_link_is_the_run_that_names_the_job(store):
    job_id = jobs.record_job(store, ["tuner", "search", "/data", "--backbone", "VGG16"])
    other = store.create_run("search", "VGG16", {"data": "/data"}, "same", "/data")
    mine = store.create_run("search", "VGG16", {"data": "/data"}, "same", "/data")
    store.append_event(other.id, {"event": "job", "job_id": job_id + 1})
    assert jobs._link_run(store, jobs.get_job(store, job_id)) is None  # same data, same time
    store.append_event(mine.id, {"event": "job", "job_id": job_id})
    assert jobs._link_run(store, jobs.get_job(store, job_id)) == mine.id
