"""The run store: layout, ids, lifecycle, metrics, findings, events, concurrency, formatting."""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import re
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from training.errors import BabysitterError, RunNotFoundError
from training.store import SCHEMA_VERSION, RunStore, pid_alive
from training.store import runs as runs_module
from training.store.report import format_run, format_run_list, run_to_dict

ID_RE = re.compile(r"\d{8}-\d{6}-[a-z0-9-]+-[0-9a-f]{4}")


def make_run(store: RunStore, label: str = "resnet50", **kwargs) -> runs_module.Run:
    args = {
        "kind": "train",
        "label": label,
        "config": {"backbone": label, "fit": {"lr": 1e-3, "epochs": 3}},
        "fingerprint": "fp-1",
        "dataset": "/data/pets",
    }
    args.update(kwargs)
    return store.create_run(**args)


def dead_pid() -> int:
    """The pid of a process that has already exited."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def force_running(store: RunStore, run_id: str, pid: int, heartbeat_age_s: float = 0.0) -> None:
    """Make a run look like it is running in ``pid`` with a heartbeat of the given age."""
    beat = runs_module.datetime.fromtimestamp(time.time() - heartbeat_age_s, runs_module.UTC)
    with sqlite3.connect(store.db_path) as conn:
        conn.execute(
            "UPDATE runs SET status = 'running', pid = ?, heartbeat_at = ? WHERE id = ?",
            (pid, beat.isoformat(timespec="microseconds"), run_id),
        )


# -- layout and schema -------------------------------------------------------------------------


def test_store_lives_in_babysitter_home(babysitter_home):
    store = RunStore()
    assert store.home == babysitter_home.resolve()
    assert (babysitter_home / "babysitter.sqlite").is_file()
    assert store.datasets_dir() == babysitter_home / "datasets"
    assert store.cache_dir().is_dir() and store.demo_dir().is_dir()
    with sqlite3.connect(store.db_path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"runs", "epochs", "findings"} <= tables


def test_default_home_is_relative_to_cwd(tmp_path, monkeypatch):
    monkeypatch.delenv("BABYSITTER_HOME")
    monkeypatch.chdir(tmp_path)
    assert RunStore().home == (tmp_path / "babysitter-home").resolve()


def test_explicit_home_and_reopening_keeps_runs(tmp_path):
    run = make_run(RunStore(tmp_path / "elsewhere"))
    again = RunStore(tmp_path / "elsewhere")
    assert again.get_run(run.id).id == run.id


def test_store_from_a_newer_version_is_refused(babysitter_home):
    RunStore()
    with sqlite3.connect(babysitter_home / "babysitter.sqlite") as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(BabysitterError, match="newer"):
        RunStore()


def schema(db_path: Path) -> tuple[int, list[tuple[str, str]]]:
    """A database's ``user_version`` and every table's, index's and trigger's SQL."""
    with sqlite3.connect(db_path) as conn:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        sql = conn.execute("SELECT name, sql FROM sqlite_master ORDER BY name").fetchall()
    return version, sql


def test_migrations_upgrade_an_empty_database(babysitter_home, tmp_path):
    babysitter_home.mkdir(parents=True)
    sqlite3.connect(babysitter_home / "babysitter.sqlite").close()
    assert schema(babysitter_home / "babysitter.sqlite") == (0, [])
    store = RunStore()
    upgraded = schema(store.db_path)
    assert upgraded[0] == SCHEMA_VERSION
    assert upgraded == schema(RunStore(tmp_path / "fresh").db_path)  # as if created new
    run = make_run(store)
    assert RunStore().get_run(run.id) == run


# -- creating and finding runs -----------------------------------------------------------------


def test_create_run_writes_folder_config_and_row(babysitter_home):
    store = RunStore()
    config = {"backbone": "resnet50", "fit": {"lr": 0.001}}
    run = store.create_run("train", "ResNet50 (cats)!", config, "fp", "/data/cats")
    assert ID_RE.fullmatch(run.id) and "-resnet50-cats-" in run.id
    assert run.path == babysitter_home.resolve() / "runs" / run.id and run.path.is_dir()
    text = (run.path / "config.json").read_text()
    assert json.loads(text) == config and "\n  " in text  # pretty-printed
    assert (run.status, run.pid, run.kind, run.config) == ("running", os.getpid(), "train", config)
    assert run.summary is None and run.error is None and run.heartbeat_at


def test_empty_label_falls_back_to_kind():
    run = RunStore().create_run("search", "", {}, "fp", "d")
    assert "-search-" in run.id


def test_create_run_rejects_unknown_kind():
    with pytest.raises(ValueError, match="kind"):
        RunStore().create_run("bake", "x", {}, "fp", "d")


def test_get_run_by_id_and_unique_prefix():
    store = RunStore()
    run = make_run(store)
    assert store.get_run(run.id) == run
    assert store.get_run(run.id[:-2]).id == run.id
    assert store.get_run(f"  {run.id} ").id == run.id


def test_ambiguous_prefix_lists_candidates():
    store = RunStore()
    a, b = make_run(store), make_run(store)
    with pytest.raises(RunNotFoundError) as err:
        store.get_run("20")
    message = str(err.value)
    assert a.id in message and b.id in message and "python -m training runs list" in message


def test_unknown_id_suggests_close_ids():
    store = RunStore()
    run = make_run(store)
    typo = run.id[:-1] + ("0" if run.id[-1] != "0" else "1") + "x"
    with pytest.raises(RunNotFoundError) as err:
        store.get_run(typo)
    assert run.id in str(err.value) and "python -m training runs list" in str(err.value)
    with pytest.raises(RunNotFoundError):
        store.get_run("")


def test_list_runs_newest_first_and_filtered():
    store = RunStore()
    first = make_run(store, "a")
    second = store.create_run("search", "b", {}, "fp", "d")
    third = make_run(store, "c")
    store.set_status(third.id, "completed")
    assert [r.id for r in store.list_runs()] == [third.id, second.id, first.id]
    assert [r.id for r in store.list_runs(kind="train")] == [third.id, first.id]
    assert [r.id for r in store.list_runs(status="completed")] == [third.id]
    assert store.list_runs(kind="check") == []
    with pytest.raises(ValueError, match="status"):
        store.list_runs(status="done")


# -- lifecycle and resuming --------------------------------------------------------------------


def test_set_status_summary_and_error():
    store = RunStore()
    run = make_run(store)
    store.set_status(run.id, "failed", summary={"best_val_accuracy": 0.5}, error="boom")
    got = store.get_run(run.id)
    assert (got.status, got.summary, got.error) == ("failed", {"best_val_accuracy": 0.5}, "boom")
    store.set_status(run.id, "interrupted")  # None keeps summary and error
    assert store.get_run(run.id).summary == {"best_val_accuracy": 0.5}
    with pytest.raises(ValueError):
        store.set_status(run.id, "exploded")
    with pytest.raises(RunNotFoundError):
        store.set_status("20990101-000000-nope-0000", "failed")


def test_find_resumable_interrupted_and_not_finished():
    store = RunStore()
    run = make_run(store)
    assert store.find_resumable("train", "fp-1") is None  # running in this live process
    store.set_status(run.id, "interrupted")
    assert store.find_resumable("train", "fp-1").id == run.id
    assert store.find_resumable("train", "other") is None
    assert store.find_resumable("search", "fp-1") is None
    store.set_status(run.id, "completed")
    assert store.find_resumable("train", "fp-1") is None


def test_find_resumable_running_but_dead_or_silent():
    store = RunStore()
    run = make_run(store)
    force_running(store, run.id, dead_pid())
    assert store.find_resumable("train", "fp-1").id == run.id
    force_running(store, run.id, os.getppid(), heartbeat_age_s=10_000)
    assert store.find_resumable("train", "fp-1").id == run.id
    force_running(store, run.id, os.getppid(), heartbeat_age_s=1)
    assert store.find_resumable("train", "fp-1") is None
    assert store.find_resumable("train", "fp-1", stale_after_s=0.5).id == run.id


def test_find_resumable_picks_the_newest():
    store = RunStore()
    old, new = make_run(store), make_run(store)
    store.set_status(old.id, "interrupted")
    store.set_status(new.id, "interrupted")
    assert store.find_resumable("train", "fp-1").id == new.id


def test_pid_alive(monkeypatch):
    assert pid_alive(os.getpid()) and pid_alive(os.getppid())
    assert not pid_alive(dead_pid()) and not pid_alive(None) and not pid_alive(0)

    def denied(pid, sig):
        raise PermissionError

    monkeypatch.setattr(runs_module.os, "kill", denied)
    assert pid_alive(12345)  # exists, but belongs to another user


def test_claim_takes_over_a_dead_run_and_refuses_a_live_one():
    store = RunStore()
    run = make_run(store)
    store.set_status(run.id, "failed", error="oom")
    force_running(store, run.id, dead_pid())
    claimed = store.claim(run.id)
    assert (claimed.status, claimed.pid, claimed.error) == ("running", os.getpid(), None)
    force_running(store, run.id, os.getppid())
    with pytest.raises(BabysitterError, match="already running"):
        store.claim(run.id)
    assert store.claim(run.id, force=True).pid == os.getpid()
    with pytest.raises(RunNotFoundError):
        store.claim("20990101-000000-nope-0000")


def test_heartbeat_moves_forward():
    store = RunStore()
    run = make_run(store)
    time.sleep(0.01)
    store.heartbeat(run.id)
    assert store.get_run(run.id).heartbeat_at > run.heartbeat_at
    with pytest.raises(RunNotFoundError):
        store.heartbeat("20990101-000000-nope-0000")


def test_delete_run_removes_rows_and_folder():
    store = RunStore()
    run = make_run(store)
    store.record_epoch(run.id, "phase1", 0, {"loss": 1.0})
    store.delete_run(run.id)
    assert not run.path.exists() and store.epochs(run.id) == []
    with pytest.raises(RunNotFoundError):
        store.get_run(run.id)


# -- epochs, findings, events ------------------------------------------------------------------


def test_epochs_upsert_and_order_by_phase_then_epoch():
    store = RunStore()
    run = make_run(store)
    for epoch in (1, 0, 2):
        store.record_epoch(run.id, "phase1", epoch, {"loss": float(epoch)})
    store.record_epoch(run.id, "phase2", 0, {"loss": 0.5})
    store.record_epoch(run.id, "phase1", 2, {"loss": 9.0, "val_loss": 8.0})  # resumed phase
    got = store.epochs(run.id)
    assert [(e["phase"], e["epoch"]) for e in got] == [
        ("phase1", 0),
        ("phase1", 1),
        ("phase1", 2),
        ("phase2", 0),
    ]
    assert got[2] == {"phase": "phase1", "epoch": 2, "loss": 9.0, "val_loss": 8.0}


def test_metrics_round_trip_nan_inf_and_numpy():
    store = RunStore()
    run = make_run(store)
    metrics = {"loss": float("nan"), "val_loss": float("inf"), "lr": -float("inf")}
    store.record_epoch(run.id, "phase1", 0, {**metrics, "acc": np.float32(0.25), "n": np.int64(3)})
    (got,) = store.epochs(run.id)
    assert math.isnan(got["loss"]) and got["val_loss"] == math.inf and got["lr"] == -math.inf
    assert got["acc"] == 0.25 and got["n"] == 3
    store.set_status(run.id, "failed", summary={"final_loss": float("nan")})
    assert math.isnan(store.get_run(run.id).summary["final_loss"])


def test_record_epoch_counts_as_heartbeat_and_needs_a_run():
    store = RunStore()
    run = make_run(store)
    time.sleep(0.01)
    store.record_epoch(run.id, "phase1", 0, {"loss": 1.0})
    assert store.get_run(run.id).heartbeat_at > run.heartbeat_at
    with pytest.raises(RunNotFoundError):
        store.record_epoch("20990101-000000-nope-0000", "phase1", 0, {})


@dataclass
class FakeFinding:
    check: str
    status: str
    advice: str


def test_findings_keep_order_across_calls():
    store = RunStore()
    run = make_run(store)
    store.add_findings(run.id, [{"check": "loss_drops", "status": "ok", "measured": 0.1}])
    store.add_findings(run.id, [FakeFinding("overfit", "warn", "raise L2"), {"check": "x"}])
    got = store.findings(run.id)
    assert [f["check"] for f in got] == ["loss_drops", "overfit", "x"]
    assert got[1] == {"check": "overfit", "status": "warn", "advice": "raise L2"}
    with sqlite3.connect(store.db_path) as conn:
        rows = conn.execute("SELECT seq, check_id, status FROM findings ORDER BY seq").fetchall()
    assert rows == [(1, "loss_drops", "ok"), (2, "overfit", "warn"), (3, "x", "")]


def test_events_are_json_lines_with_utc_time():
    store = RunStore()
    run = make_run(store)
    store.append_event(run.id, {"event": "epoch_end", "epoch": 0, "loss": float("nan")})
    store.append_event(run.id, {"event": "done"})
    lines = store.artifact(run.id, "events").read_text().splitlines()
    assert len(lines) == 3  # after the "created" line the store journals for `runs repair`
    first = json.loads(lines[1])
    assert first["event"] == "epoch_end" and first["time"].endswith("+00:00")
    with store.artifact(run.id, "events").open("a") as f:
        f.write('{"torn": ')  # a crash mid-line
    assert [e["event"] for e in store.events(run.id)] == ["created", "epoch_end", "done"]


def test_artifact_paths():
    store = RunStore()
    run = make_run(store)
    expected = {
        "model": "model.keras",
        "config": "config.json",
        "events": "events.jsonl",
        "history": "history.json",
        "tensorboard": "tb",
        "backup_phase2": "backup/phase2",
        "tuner": "tuner",
        "export": "export",
        "phase1": "phase1.weights.h5",
        "predictions": "predictions.npz",
    }
    for name, rel in expected.items():
        assert store.artifact(run.id, name) == run.path / rel
    assert store.run_dir(run.id) == run.path
    with pytest.raises(ValueError, match="artefact"):
        store.artifact(run.id, "weights")
    with pytest.raises(RunNotFoundError, match="Expected a run id"):
        store.run_dir("../../etc")


# -- concurrency -------------------------------------------------------------------------------


def _writer(home: str, run_id: str, count: int) -> None:
    store = RunStore(home)
    store.claim(run_id)
    for epoch in range(count):
        store.record_epoch(run_id, "phase1", epoch, {"loss": 1.0 / (epoch + 1)})
        store.heartbeat(run_id)
        store.append_event(run_id, {"event": "epoch_end", "epoch": epoch})
    store.set_status(run_id, "completed", summary={"epochs": count})


def test_concurrent_writers_do_not_lock_or_lose_rows(babysitter_home):
    store = RunStore()
    run_ids = [make_run(store, f"w{i}").id for i in range(3)]
    for run_id in run_ids:
        store.set_status(run_id, "interrupted")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(store.home), r, 100)) for r in run_ids]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    for run_id in run_ids:
        assert [e["epoch"] for e in store.epochs(run_id)] == list(range(100))
        assert store.get_run(run_id).status == "completed"
        events = [e["event"] for e in store.events(run_id)]
        assert events.count("epoch_end") == 100 and events.count("epoch") == 100


# -- formatting --------------------------------------------------------------------------------


def test_format_run_list_table():
    store = RunStore()
    run = make_run(store)
    store.set_status(
        run.id, "completed", summary={"best_val_accuracy": 0.9123, "val": {"accuracy": 0.9}}
    )
    other = store.create_run("search", "mobilenet", {"backbones": ["mobilenet"]}, "f", "")
    fitted = make_run(store, "mobilenetv2")
    store.set_status(fitted.id, "completed", summary={"val": {"accuracy": 0.75, "loss": 0.6}})
    force_running(store, other.id, dead_pid())
    text = format_run_list(store.list_runs())
    header, *rows = text.splitlines()
    assert header.split()[:3] == ["ID", "KIND", "STATUS"]
    assert rows[0].startswith(fitted.id) and "- / 0.7500" in rows[0]
    assert rows[1].startswith(other.id) and "mobilenet" in rows[1] and "interrupted" in rows[1]
    # A killed run says the same everywhere: the list, the report and --json.
    killed = store.get_run(other.id)
    assert format_run(killed, [], []).splitlines()[0].endswith("(search, interrupted)")
    assert run_to_dict(killed)["status"] == "interrupted"
    assert rows[2].startswith(run.id) and "completed" in rows[2] and "pets" in rows[2]
    assert "0.9123 / 0.9000" in rows[2] and "resnet50" in rows[2]
    assert header.index("KIND") == rows[1].index("search") == rows[2].index("train")
    assert format_run_list([]) == "No runs yet."


def test_format_run_and_json():
    store = RunStore()
    run = make_run(store)
    store.record_epoch(run.id, "phase1", 0, {"loss": 1.25, "val_accuracy": float("nan")})
    store.add_findings(run.id, [{"check": "overfit", "status": "warn", "advice": "raise L2"}])
    store.set_status(run.id, "failed", summary={"best_val_accuracy": 0.5}, error="it broke")
    run, epochs, findings = store.get_run(run.id), store.epochs(run.id), store.findings(run.id)
    text = format_run(run, epochs, findings)
    for expected in (run.id, "fit.lr", "1.2500", "nan", "[warn] overfit: raise L2", "it broke"):
        assert expected in text
    assert "config.json" in text and "Summary" in text
    data = json.loads(json.dumps(run_to_dict(run, epochs, findings)))
    assert data["id"] == run.id and data["path"] == str(run.path)
    assert data["epochs"][0]["loss"] == 1.25 and data["findings"][0]["check"] == "overfit"
    assert "epochs" not in run_to_dict(run) and run_to_dict(run)["status"] == "failed"


def test_homes_share_one_compilation_cache_when_asked(tmp_path, monkeypatch):
    """``$BABYSITTER_COMPILE_CACHE`` replaces each home's own ``cache/compiled``."""
    monkeypatch.delenv("BABYSITTER_COMPILE_CACHE", raising=False)
    first, second = RunStore(tmp_path / "a"), RunStore(tmp_path / "b")
    assert first.compilation_cache_dir() != second.compilation_cache_dir()
    assert first.compilation_cache_dir().is_relative_to(tmp_path / "a")
    monkeypatch.setenv("BABYSITTER_COMPILE_CACHE", str(tmp_path / "shared"))
    assert first.compilation_cache_dir() == second.compilation_cache_dir() == tmp_path / "shared"
