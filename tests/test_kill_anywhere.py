"""SIGKILL `train` and `tuner search` at every stage of their work; the same command finishes.

Each slow test runs one command and kills it at successive points, re-running it after each kill
(one process per point rather than a fresh start per point: TensorFlow's import alone takes
seconds). After every kill and at the end the store must hold each epoch and each finished trial
exactly once, keep what was finished before the kill, and pass SQLite's integrity check. The
moments a kill can only hit by chance (between Keras Tuner's files and the store's row) are
replayed in-process by the fast tests at the end.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import keras_tuner as kt
import numpy as np
import pytest
from PIL import Image

from tests.cli_process import ROOT, cli_command, cli_env
from tests.imagegen import make_image_folder
from training.store import RunStore, shown_status
from training.store.trials import stages, trials
from tuner.head_tuner import HeadTuner
from tuner.oracles import make_oracle
from tuner.stages import plan_stages

POLL_S = 0.01
HEAD_EPOCHS = 10  # phase 1 long enough (tens of ms an epoch) to be caught in the middle
FINETUNE_EPOCHS = 2
TRIALS = 4
PLAN = plan_stages(TRIALS, 2)  # trials per stage
TRIAL_EPOCHS = 3  # a search's head trials and its fine-tune's phase 1


def _slow_to_decode(data: Path) -> None:
    """One large uncompressed image: the cache build takes a few hundred ms, long enough to be
    caught, while every later step works on the 32 px cache."""
    pixels = np.random.default_rng(0).integers(0, 256, (3072, 3072, 3), dtype=np.uint8)
    pixels[..., 0] = 220  # still red on average
    Image.fromarray(pixels).save(data / "red" / "large.bmp")


def _kill_when(command: list[str], home: Path, log: Path, ready: Callable[[], bool], point: str):
    """Start ``command`` and SIGKILL it the moment ``ready()`` holds."""
    with log.open("w") as out:
        process = subprocess.Popen(
            command, env=cli_env(home), cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 240
        try:
            while not ready():
                if process.poll() is not None:
                    pytest.fail(
                        f"{point}: the process ended (exit {process.returncode}) before it could "
                        f"be killed:\n{log.read_text()[-3000:]}"
                    )
                if time.monotonic() > deadline:
                    pytest.fail(f"{point}: never reached")
                time.sleep(POLL_S)
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait()


def _finish(command: list[str], home: Path) -> subprocess.CompletedProcess:
    done = subprocess.run(
        command, env=cli_env(home), cwd=ROOT, capture_output=True, text=True, timeout=400
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done


def _assert_store_sound(store: RunStore) -> None:
    """SQLite's own check, and every phase of every run numbered 1..n without a gap."""
    with sqlite3.connect(store.db_path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    for run in store.list_runs(kind="train"):
        for phase, numbers in _epochs(store, run.id).items():
            assert numbers == list(range(1, len(numbers) + 1)), (run.id, phase, numbers)


def _epochs(store: RunStore, run_id: str) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for epoch in store.epochs(run_id):
        out.setdefault(epoch["phase"], []).append(epoch["epoch"])
    return out


@pytest.mark.slow
def test_train_killed_in_the_cache_build_phase_1_and_phase_2_finishes_with_every_epoch_once(
    tmp_path, babysitter_home
):
    data = make_image_folder(tmp_path / "d", {"red": 6, "green": 6}, size=32)
    _slow_to_decode(data)
    command = cli_command(
        "train", str(data), "--backbone", "VGG16", "--weights", "none", "--image-size", "32",
        "--batch-size", "4", "--unfreeze", "1", "--epochs-head", str(HEAD_EPOCHS),
        "--epochs-finetune", str(FINETUNE_EPOCHS),
    )  # fmt: skip
    store = RunStore(babysitter_home)
    cache = babysitter_home / "cache"

    def building() -> bool:
        return cache.is_dir() and any(p.name.endswith(".tmp") for p in cache.iterdir())

    _kill_when(command, babysitter_home, tmp_path / "cache.log", building, "image cache build")
    assert not list(cache.glob("images-*")), "the cache was finished: the kill came too late"
    assert store.list_runs() == []  # the run is created once the data is ready
    _assert_store_sound(store)

    def in_phase_1() -> bool:
        runs = store.list_runs()
        return bool(runs) and any(e["phase"] == "head" for e in store.epochs(runs[0].id))

    _kill_when(command, babysitter_home, tmp_path / "phase1.log", in_phase_1, "phase 1")
    (run,) = store.list_runs()
    assert not store.artifact(run.id, "phase1").exists(), "phase 1 ended: the kill came too late"
    _assert_store_sound(store)

    # Just after phase 2 wrote its first checkpoint (Keras' BackupAndRestore files).
    checkpoint = store.artifact(run.id, "backup_phase2") / "training_metadata.json"
    _kill_when(command, babysitter_home, tmp_path / "phase2.log", checkpoint.exists, "phase 2")
    assert FINETUNE_EPOCHS not in _epochs(store, run.id)["finetune"], "phase 2 ended first"
    checkpointed = json.loads(checkpoint.read_text())["epoch"]
    assert shown_status(store.get_run(run.id)) == "interrupted"
    _assert_store_sound(store)
    before = {e["epoch"]: e for e in store.epochs(run.id) if e["phase"] == "finetune"}

    done = _finish(command, babysitter_home)
    assert f"Resuming run {run.id}" in done.stdout
    assert "Phase 1 already finished" in done.stdout
    (finished,) = store.list_runs()
    assert (finished.id, finished.status) == (run.id, "completed")
    assert _epochs(store, run.id) == {
        "head": list(range(1, HEAD_EPOCHS + 1)),
        "finetune": list(range(1, FINETUNE_EPOCHS + 1)),
    }
    # The checkpointed epochs are kept, not redone.
    after = {e["epoch"]: e for e in store.epochs(run.id) if e["phase"] == "finetune"}
    assert checkpointed >= 1
    kept = range(1, checkpointed + 1)
    assert [after[epoch] for epoch in kept] == [before[epoch] for epoch in kept]
    _assert_store_sound(store)


@pytest.mark.slow
def test_search_killed_between_trials_and_in_its_fine_tune_resumes_every_trial_once(
    tmp_path, babysitter_home
):
    data = make_image_folder(tmp_path / "c", {"red": 6, "green": 6, "blue": 6}, size=32)
    command = [
        sys.executable, "-m", "tuner", "search", str(data), "--backbone", "VGG16",
        "--weights", "none", "--image-size", "32", "--batch-size", "8", "--trials", str(TRIALS),
        "--stages", str(len(PLAN)), "--epochs-head", str(TRIAL_EPOCHS), "--epochs-finetune", "0",
        "--top-k", "1", "--space", "optimizer=adam", "--space", "head_units=0", "--resume",
        "--trial-execution", "serial",  # one trial ends at a time; batched: test_batched_stage
    ]  # fmt: skip
    store = RunStore(babysitter_home)
    seen: dict[str, dict] = {}  # every trial recorded before a kill: kept as it was

    def search_id() -> str | None:
        runs = store.list_runs(kind="search")
        return runs[0].id if runs else None

    def ended(stage: int) -> int:
        """Trials of ``stage`` that Keras Tuner's own files call finished."""
        run_id = search_id()
        if run_id is None:
            return 0
        folder = store.run_dir(run_id) / "tuner" / f"stage_{stage}"
        return sum('"COMPLETED"' in p.read_text() for p in folder.glob("trial_*/trial.json"))

    def after_kill(point: str) -> None:
        _assert_store_sound(store)
        rows = trials(store, search_id())
        ids = [t["trial_id"] for t in rows]
        assert len(ids) == len(set(ids)), (point, ids)
        for trial in rows:
            assert seen.setdefault(trial["trial_id"], trial) == trial, (point, trial["trial_id"])

    # Between trials of the second stage, just after Keras Tuner marked one finished: while it
    # rewrites oracle.json, or before the store's row (these moments are replayed one by one
    # by the fast tests below).
    log = tmp_path / "trials.log"
    _kill_when(command, babysitter_home, log, lambda: ended(2) > 0, "between trials")
    assert ended(2) < PLAN[1], "the stage ended: the kill came too late"
    after_kill("between trials")
    # A finished trial whose Keras Tuner file was damaged (a disk that filled up) is redone.
    folder = store.artifact(search_id(), "tuner") / "stage_1"
    damaged = sorted(folder.glob("trial_*/trial.json"))[0]
    damaged.write_text("{not json")
    seen.pop(f"s1-{damaged.parent.name.removeprefix('trial_')}")

    def fine_tuning() -> bool:
        runs = store.list_runs(kind="train")
        return bool(runs) and bool(store.epochs(runs[0].id))

    _kill_when(command, babysitter_home, tmp_path / "finetune.log", fine_tuning, "fine-tune")
    assert "its file was unreadable; it will be redone" in (tmp_path / "finetune.log").read_text()
    after_kill("fine-tune")
    (child,) = store.list_runs(kind="train")
    assert shown_status(child) == "interrupted"

    run_id = search_id()
    done = _finish(command, babysitter_home)
    assert f"Resuming search {run_id}" in done.stdout
    after_kill("the end")
    (search,) = store.list_runs(kind="search")
    assert (search.id, search.status) == (run_id, "completed")
    rows = trials(store, run_id)
    assert len(rows) == TRIALS and all(t["status"] == "completed" for t in rows)
    assert [sum(t["stage"] == s for t in rows) for s in (1, 2)] == PLAN
    assert [s["trials"] for s in stages(store, run_id)] == PLAN
    # The fine-tune was resumed, not started again beside the killed one.
    assert [(r.id, r.status) for r in store.list_runs(kind="train")] == [(child.id, "completed")]
    assert _epochs(store, child.id) == {"head": list(range(1, TRIAL_EPOCHS + 1))}
    events = [e for e in store.events(run_id) if e.get("event") == "finetuned"]
    assert [e["run_id"] for e in events] == [child.id]


class Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs."""


def _stage_tuner(store: RunStore, run_id: str, folder: Path) -> HeadTuner:
    """Stage 1 of a search, opened as ``_run_stages`` opens it: reloaded when its files exist."""
    hp = kt.HyperParameters()
    hp.Float("lr", 1e-4, 1e-2, sampling="log")
    oracle = make_oracle("random", hp, 3, 1, 0, store, run_id, stage=1)
    return HeadTuner(
        oracle,
        {},
        1,
        details_dir=folder / "stage_1",
        directory=str(folder),
        project_name="stage_1",
        overwrite=False,
    )


@pytest.mark.parametrize(
    ("killed_in", "kept"),
    [
        ("run_trial", False),  # the trial never ended: it is run again
        ("save", True),  # its trial file was written, oracle.json not
        ("_record", True),  # Keras Tuner's files were written, the store's row not
        (None, True),  # all written, but oracle.json still lists it as ongoing
    ],
)
def test_a_trial_that_ended_before_a_kill_is_kept_once_and_one_that_did_not_is_redone(
    tmp_path, babysitter_home, killed_in, kept
):
    store = RunStore(babysitter_home)
    run = store.create_run("search", "kill", {}, "fingerprint", "data")
    tuner = _stage_tuner(store, run.id, tmp_path)
    tuner.on_search_begin()
    trial = tuner.oracle.create_trial(tuner.tuner_id)
    if killed_in != "run_trial":
        tuner.oracle.update_trial(trial.trial_id, {"val_accuracy": 0.5})
        trial.status = kt.engine.trial.TrialStatus.COMPLETED

        def kill(*args, **kwargs):
            raise Killed

        if killed_in is not None:
            setattr(tuner.oracle, killed_in, kill)
        with contextlib.suppress(Killed):
            tuner.oracle.end_trial(trial)

    resumed = _stage_tuner(store, run.id, tmp_path)
    rows = trials(store, run.id)
    assert [(t["trial_id"], t["score"]) for t in rows] == ([("s1-0", 0.5)] if kept else [])
    next_trial = resumed.oracle.create_trial(resumed.tuner_id)
    assert next_trial.trial_id == ("1" if kept else "0")
