"""Jobs: CLI commands started as detached processes (by the app), tracked in the run store.

A job is ``python -m training …`` or ``python -m tuner …`` run in its own session, so it survives
the app that started it (a browser reload, an app restart). Its output goes to a log file in the
job's folder, never through a shell: the command is an argument list from start to end.

The process launched is a small wrapper, ``python -m training.jobs run JOB_ID -- CMD…``: it starts
the real command, waits for it, and writes the exit code to a file and to the store, so a finished
job is ``completed`` or ``failed`` by its real exit status. A job whose wrapper vanished without
writing one (machine restart, ``kill -9``) is marked ``interrupted`` by :func:`refresh`.

The wrapped command gets SIGTERM as ``KeyboardInterrupt``, so :func:`cancel` (SIGTERM to the
process group, SIGKILL after a grace period) lets ``train`` and ``search`` mark their run
interrupted, resumable with the same command (``--resume`` for a search).

The command runs with ``$BABYSITTER_JOB_ID`` set, and the run it creates or resumes records that
id: the job's run is read from that record (or from the run's own record of the process that owns
it), never guessed from times or folders, so two identical jobs started together keep their own
runs. The wrapper copies the command's output to the log without TensorFlow's C++ start-up lines
(:mod:`training.job_log`).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import training
from training.atomic import write_text
from training.errors import BabysitterError, RunNotFoundError, WriteError
from training.job_log import copy_quietly
from training.store import HOME_VARIABLE, Run, RunStore, pid_alive, shown_status
from training.store.job_env import JOB_ENV, parse_job_id
from training.store.jobs import (
    RESUMABLE,
    Job,
    get_job,
    job_folder,
    list_jobs,
    record_job,
    update_job,
)

MODULES = ("training", "tuner")
RUN_KINDS = {"tuner search": "search", "training train": "train", "training check": "check"}
LOG_NAME = "job.log"
EXIT_NAME = "exit_code"
CHILD_PID_NAME = "child.pid"
RESUMES_NAME = "resumes.json"
GRACE_S = 10.0
# The job runs in the folder that holds the ``training`` package: ``python -m`` and ``-c`` look in
# the working folder first, so the job runs the code the app runs, from a project folder or from
# an installed package, with no import path to set.
ROOT = Path(training.__file__).resolve().parents[1]

# Wrappers this process launched and has not reaped yet, each waited for by its own reaper
# thread (:func:`_reap`): a finished child of ours would otherwise linger as a zombie that still
# answers ``kill(pid, 0)``.
_LAUNCHED: dict[int, subprocess.Popen] = {}

# Run in the child: SIGTERM becomes KeyboardInterrupt, then ``python -m MODULE ARGS`` exactly.
_BOOT = (
    "import runpy, signal, sys; signal.signal(signal.SIGTERM, signal.default_int_handler); "
    "module = sys.argv[1]; sys.argv = [module] + sys.argv[2:]; "
    "runpy.run_module(module, run_name='__main__', alter_sys=True)"
)


def _check_args(args: list[str]) -> None:
    if not args or args[0] not in MODULES:
        raise BabysitterError(
            f"Expected a command starting with one of {MODULES} (run as `python -m <module>`). "
            f"Received: {args!r}"
        )
    if len(args) < 2 or not all(isinstance(a, str) for a in args):
        raise BabysitterError(f"Expected a list of strings with a subcommand. Received: {args!r}")


def start_job(store: RunStore, args: list[str]) -> Job:
    """Start ``python -m args[0] args[1:]`` detached; the row is written before the process runs.

    Args:
        store: The run store the job (and its command) writes to; passed on as $BABYSITTER_HOME.
        args: e.g. ``["tuner", "search", "/data/cats", "--backbone", "VGG16"]``.
    """
    args = [str(a) for a in args]
    _check_args(args)
    job_id = record_job(store, args)
    log_path = job_folder(store, job_id) / LOG_NAME
    env = {**os.environ, HOME_VARIABLE: str(store.home), "PYTHONUNBUFFERED": "1"}
    wrapper = [sys.executable, "-m", "training.jobs", "run", str(job_id), "--"]
    wrapper += [sys.executable, "-c", _BOOT, *args]
    try:
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                wrapper,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                env=env,
                start_new_session=True,
                close_fds=True,
            )
    except OSError as error:
        update_job(store, job_id, status="failed", log_path=str(log_path), exit_code=-1)
        raise BabysitterError(f"Could not start job {job_id}: {error}") from error
    _LAUNCHED[proc.pid] = proc
    threading.Thread(target=_reap, args=(proc,), name=f"reap-job-{job_id}", daemon=True).start()
    update_job(store, job_id, pid=proc.pid, log_path=str(log_path))
    return get_job(store, job_id)


def _reap(proc: subprocess.Popen) -> None:
    """Wait for a launched wrapper so it never lingers as a zombie. Polling from :func:`refresh`
    cannot do it: the wrapper marks its job finished before it exits, so refresh, which looks at
    running jobs only, never polls it again, and the zombie stays until the app exits."""
    proc.wait()
    _LAUNCHED.pop(proc.pid, None)


def _proc_stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rfind(")") + 2 :].split()


def _wrapper_alive(job: Job) -> bool:
    """Whether the job's wrapper process still runs (reaped, not a zombie, not a reused pid)."""
    pid = job.pid
    if not pid:
        return False
    if (proc := _LAUNCHED.get(pid)) is not None:
        return proc.poll() is None
    if Path("/proc").is_dir():
        stat = _proc_stat(pid)
        if stat is None or stat[0] == "Z":
            return False
        with contextlib.suppress(OSError):
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            return b"training.jobs" in cmdline and str(job.id).encode() in cmdline
        return True
    return pid_alive(pid)


def _group_alive(pgid: int) -> bool:
    """Whether any live (non-zombie) process is left in the process group (our own wrapper is
    reaped by :func:`_reap`, so ``killpg(pgid, 0)`` does not count it once it ended)."""
    if Path("/proc").is_dir():
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                stat = _proc_stat(int(entry.name))
                if stat and stat[0] != "Z" and int(stat[2]) == pgid:
                    return True
        return False
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _link_run(store: RunStore, job: Job) -> str | None:
    """The run this job created or resumed, as the run recorded it: an event naming the job
    (``job_id``, from ``$BABYSITTER_JOB_ID``) or the job's child as the process that owns it.

    Only runs touched since the job started are read: a bound on the work, not a guess.
    """
    kind = RUN_KINDS.get(job.kind)
    if kind is None:
        return None
    child = _read_int(job.folder / CHILD_PID_NAME)
    for run in store.list_runs(kind=kind):
        if run.updated_at < job.created_at:
            continue
        if (child is not None and run.pid == child) or _names_job(store, run.id, job.id):
            return run.id
    return None


def _names_job(store: RunStore, run_id: str, job_id: int) -> bool:
    return any(str(e.get("job_id")) == str(job_id) for e in store.events(run_id))


def _link(store: RunStore, job_id: int) -> Job:
    """Write the job's run into its row once the run exists; the job as it is now."""
    job = get_job(store, job_id)
    if job.run_id is None and (run_id := _link_run(store, job)):
        update_job(store, job.id, run_id=run_id)
        job = get_job(store, job_id)
    return job


def refresh(store: RunStore) -> list[Job]:
    """Bring running jobs up to date: link their runs, finish those whose process ended.

    A wrapper that ended wrote the exit code (file, then store); one that vanished without it is
    marked ``interrupted``, as is its run if the run still says ``running``.
    """
    for job in list_jobs(store, status="running"):
        job = _link(store, job.id)
        if _wrapper_alive(job):
            continue
        code = _read_int(job.folder / EXIT_NAME)
        if code is None:
            update_job(store, job.id, only_running=True, status="interrupted")
        else:
            _finish(store, job.id, code)
        _settle_run(store, _link(store, job.id))
    return list_jobs(store)


def _settle_run(store: RunStore, job: Job) -> None:
    """A run left 'running' by a job that ended: mark it interrupted so it can be resumed."""
    if job.run_id is None:
        return
    with contextlib.suppress(BabysitterError):
        run = store.get_run(job.run_id)
        child = _read_int(job.folder / CHILD_PID_NAME)
        if run.status == "running" and (child is None or run.pid == child):
            store.set_status(run.id, "interrupted", error=f"job {job.id} ended ({job.status})")


def _finish(store: RunStore, job_id: int, code: int) -> None:
    """Record the exit code; status by it unless the job was cancelled meanwhile."""
    status = "completed" if code == 0 else "failed"
    if not update_job(store, job_id, only_running=True, status=status, exit_code=code):
        update_job(store, job_id, exit_code=code)


def cancel(store: RunStore, job_id: int, grace_s: float = GRACE_S) -> Job:
    """SIGTERM the job's process group, SIGKILL what is left after ``grace_s``; status cancelled."""
    job = get_job(store, job_id)
    if job.status != "running":
        return job
    update_job(store, job.id, status="cancelled")
    if job.pid and _wrapper_alive(job):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(job.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and _group_alive(job.pid):
            time.sleep(0.1)
        if _group_alive(job.pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(job.pid, signal.SIGKILL)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and _group_alive(job.pid):
                time.sleep(0.1)
    _settle_run(store, _link(store, job.id))
    return get_job(store, job.id)


def resume_args(job: Job) -> list[str]:
    """The command that continues this job: a search with ``--resume``; train resumes by itself."""
    if job.kind not in RESUMABLE:
        raise BabysitterError(f"Job {job.id} ({job.kind}) cannot be resumed; start it again.")
    args = list(job.command)
    if job.kind == "tuner search" and "--resume" not in args:
        args.append("--resume")
    return args


def can_resume(job: Job, run: Run | None) -> bool:
    """Whether Resume has something to pick up: the job's run exists and was cut off (a search
    run not completed, which ``--resume`` takes; a train run interrupted, which train resumes).
    A job that failed before creating a run has nothing to resume."""
    if not job.resumable or run is None:
        return False
    status = shown_status(run)
    if run.kind == "search":
        return status in ("interrupted", "failed", "cancelled")
    return status == "interrupted"


def resume(store: RunStore, job_id: int) -> Job:
    """Start the job's command again so it picks up its run (see :func:`resume_args`); refused
    when there is nothing to pick up, which would silently start a new run instead."""
    job = get_job(store, job_id)
    try:
        run = store.get_run(job.run_id) if job.run_id else None
    except RunNotFoundError:
        run = None
    if not can_resume(job, run):
        raise BabysitterError(
            f"Job {job_id} has nothing to resume (its run was not cut off, or it created none). "
            "Launch it again instead."
        )
    new = start_job(store, resume_args(job))
    _record_resumes(new, job)
    return new


def _record_resumes(new: Job, earlier: Job) -> None:
    """Write which job and run ``new`` resumes into its folder: the resumed command links its run
    only once it has started (a minute or more), and Monitor shows that run meanwhile. Only a
    display aid, so a failed write is not an error of the resume."""
    record = {"job": earlier.id, "run": earlier.run_id}
    with contextlib.suppress(WriteError):
        write_text(new.folder / RESUMES_NAME, json.dumps(record))


def resumed_from(job: Job) -> dict | None:
    """``{"job": id, "run": run_id}`` of the job and run this job resumes (None: it resumes
    none, or the record is unreadable)."""
    try:
        record = json.loads((job.folder / RESUMES_NAME).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or not record.get("run"):
        return None
    return record


def log_tail(job: Job, max_bytes: int = 20_000) -> str:
    """The end of the job's log (progress bars' carriage returns folded to lines)."""
    try:
        with job.log_path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            text = f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(line.split("\r")[-1] for line in text.splitlines())


def _wrap(job_id: int, command: list[str]) -> int:
    """The wrapper's body: run the command, copy its output to the log without TensorFlow's
    start-up noise, then link its run and record its exit code."""
    signal.signal(signal.SIGTERM, lambda *_: None)  # the child gets it too; we wait and record
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    store = RunStore()
    folder = job_folder(store, job_id)
    env = {**os.environ, JOB_ENV: str(job_id)}  # the run records it: see _link_run
    try:
        child = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
        )
    except OSError as error:
        print(f"error: could not start {command[0]}: {error}", flush=True)
        code = 127
    else:
        (folder / CHILD_PID_NAME).write_text(str(child.pid))
        copy_quietly(child.stdout.fileno(), sys.stdout.fileno())
        code = child.wait()
    (folder / EXIT_NAME).write_text(str(code))
    _link(store, job_id)
    _finish(store, job_id, code)
    return code


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    job_id = parse_job_id(argv[1]) if len(argv) > 1 else None
    if len(argv) < 4 or argv[0] != "run" or argv[2] != "--" or job_id is None:
        print(
            "usage: python -m training.jobs run JOB_ID -- COMMAND... (JOB_ID in ASCII digits)",
            file=sys.stderr,
        )
        return 2
    return _wrap(job_id, argv[3:])


if __name__ == "__main__":
    sys.exit(main())
