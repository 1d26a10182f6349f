"""The run store under damage: the index (SQLite) can be lost, the run folders cannot.

A missing, emptied or damaged index is one message naming it and ``runs repair``; repair keeps
the damaged file and rebuilds every run, epoch, finding, trial and stage from the folders.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess

import pytest

from tests.hostile.conftest import snapshot
from training.store import RunStore, trials

DAMAGE = ("missing", "empty", "random-bytes", "truncated")
KEPT = ("id", "kind", "label", "status", "created_at", "fingerprint", "dataset", "config")
KEPT += ("summary", "error")


def fill(store: RunStore) -> dict:
    """Two runs with everything the index holds; returns what a reader sees."""
    run = store.create_run("train", "MobileNetV2", {"backbone": "MobileNetV2"}, "fp-t", "/data")
    for epoch, loss in ((1, 0.9), (2, 0.5), (2, 0.4)):  # epoch 2 re-recorded by a resume
        store.record_epoch(run.id, "head", epoch, {"loss": loss})
    store.record_epoch(run.id, "finetune", 1, {"loss": 0.3})
    store.add_findings(run.id, [{"check": "initial_loss", "status": "ok"}])
    store.set_status(run.id, "completed", summary={"val_accuracy": 0.9})
    search = store.create_run("search", "VGG16", {"backbones": ["VGG16"]}, "fp-s", "/data")
    trials.record_stage(store, search.id, 1, {"lr": [1e-4, 1e-2]}, 3)
    for n, score in enumerate((0.7, 0.8)):
        trials.record_trial(
            store, search.id, f"s1-{n}", 1, "completed", {"lr": 1e-3}, score, [{"loss": 1}], 2.0
        )
    store.set_status(search.id, "failed", error="ValueError: boom")
    return seen(store)


def seen(store: RunStore) -> dict:
    runs = store.list_runs()
    return {
        "runs": [{field: getattr(r, field) for field in KEPT} for r in runs],
        "epochs": {r.id: store.epochs(r.id) for r in runs},
        "findings": {r.id: store.findings(r.id) for r in runs},
        "trials": {r.id: trials.trials(store, r.id) for r in runs},
        "stages": {r.id: trials.stages(store, r.id) for r in runs},
    }


def damage(db, how: str) -> bytes:
    """Damage the index as a crash, a full disk or a stray command would; the bytes left."""
    for side in ("-wal", "-shm"):
        db.with_name(db.name + side).unlink(missing_ok=True)
    data = db.read_bytes()
    if how == "missing":
        db.unlink()
        return b""
    left = {"empty": b"", "random-bytes": os.urandom(8192), "truncated": data[:4096]}[how]
    db.write_bytes(left)
    return left


@pytest.mark.parametrize("how", DAMAGE)
@pytest.mark.parametrize("command", [["runs", "list"], ["runs", "show", "2026"]])
def test_a_lost_or_damaged_index_is_one_message_naming_it(cli, babysitter_home, how, command):
    store = RunStore()
    fill(store)
    damage(store.db_path, how)
    before = snapshot(babysitter_home)
    result = cli(*command)
    assert result.code == 2
    assert str(store.db_path) in result.err and "runs repair" in result.err
    assert ("2 run folder(s)" in result.err) == (how in ("missing", "empty"))
    assert snapshot(babysitter_home) == before  # no fresh, empty index written over it


@pytest.mark.parametrize("how", DAMAGE)
def test_repair_rebuilds_everything_and_keeps_the_damaged_file(cli, babysitter_home, how):
    store = RunStore()
    expected = fill(store)
    left = damage(store.db_path, how)
    result = cli("runs", "repair")
    assert result.code == 0, result.err
    assert "Indexed 2 run(s)" in result.out
    kept = sorted(babysitter_home.glob("babysitter.sqlite.corrupt-*"))
    if how == "missing":
        assert kept == []
    else:
        assert kept[0].read_bytes() == left and str(kept[0]) in result.out
    repaired = RunStore()
    assert seen(repaired) == expected
    with sqlite3.connect(repaired.db_path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert cli("runs", "list").code == 0


def test_repair_leaves_a_healthy_index_as_it_is_and_adds_unlisted_folders(cli):
    store = RunStore()
    fill(store)
    orphan = store.create_run("check", "VGG16", {"backbone": "VGG16"}, "fp-c", "/data")
    with sqlite3.connect(store.db_path) as conn:
        conn.execute("DELETE FROM runs WHERE id = ?", (orphan.id,))
    result = cli("runs", "repair")
    assert result.code == 0 and "is healthy" in result.out and "Indexed 1 run(s)" in result.out
    back = RunStore().get_run(orphan.id)
    assert (back.kind, back.fingerprint) == ("check", "fp-c")
    assert not list(store.home.glob("*.corrupt-*"))


def test_repair_names_a_folder_it_cannot_read_and_indexes_the_rest(cli, babysitter_home):
    store = RunStore()
    fill(store)
    broken = store.create_run("train", "VGG16", {}, "fp", "/data")
    (broken.path / "config.json").write_text("{not json")
    damage(store.db_path, "random-bytes")
    result = cli("runs", "repair")
    assert result.code == 1
    assert f"skipped {broken.path}" in result.out and "Indexed 2 run(s)" in result.out


def test_two_repairs_in_one_second_keep_both_damaged_files(cli):
    store = RunStore()
    fill(store)
    first = damage(store.db_path, "random-bytes")
    assert cli("runs", "repair").code == 0
    second = damage(store.db_path, "random-bytes")
    assert cli("runs", "repair").code == 0
    kept = {p.read_bytes() for p in store.home.glob("babysitter.sqlite.corrupt-*")}
    assert kept == {first, second}


def test_damaged_store_rows_are_skipped_naming_them_and_refused_when_asked_for(cli):
    store = RunStore()
    good = store.create_run("train", "vgg16", {"backbone": "VGG16"}, "f1", "/data")
    for bad_id, config in (("20990101-000000-bad-json-0000", "{not json"), ("../../etc", "{}")):
        store.create_run("train", "vgg16", {}, "f", "/data")
        with sqlite3.connect(store.db_path) as conn:
            newest = conn.execute("SELECT id FROM runs ORDER BY rowid DESC LIMIT 1").fetchone()[0]
            conn.execute(
                "UPDATE runs SET id = ?, config_json = ? WHERE id = ?", (bad_id, config, newest)
            )
    listed = cli("runs", "list")
    assert listed.code == 0
    assert good.id in listed.out and "etc" not in listed.out
    assert "'../../etc'" in listed.err and "'20990101-000000-bad-json-0000'" in listed.err
    for asked in ("../../etc", "20990101-000000-bad-json-0000"):
        shown = cli("runs", "show", asked)
        assert shown.code != 0 and "cannot be read" in shown.err


@pytest.mark.parametrize("asked", ["../../etc", "/etc/passwd", "..", "a b", "X" * 300])
@pytest.mark.parametrize("command", ["show", "export"])
def test_an_id_that_is_not_a_run_id_is_refused(cli, tmp_path, asked, command):
    RunStore().create_run("train", "vgg16", {}, "f", "/data")
    before = snapshot(tmp_path)
    argv = ("runs", "show", asked) if command == "show" else ("export", asked)
    result = cli(*argv)
    assert result.code != 0 and asked[:40] in result.err  # named, never read as a run folder
    assert snapshot(tmp_path) == before


class FullDisk:
    """A connection whose inserts fail the way SQLite reports a full disk."""

    def __init__(self, conn):
        self._conn = conn

    def execute(self, sql, *args):
        if sql.lstrip().upper().startswith(("INSERT", "UPDATE")):
            raise sqlite3.OperationalError("database or disk is full")
        return self._conn.execute(sql, *args)

    def __getattr__(self, name):
        return getattr(self._conn, name)

    def __setattr__(self, name, value):
        if name == "_conn":
            super().__setattr__(name, value)
        else:
            setattr(self._conn, name, value)


def test_a_full_disk_while_writing_the_index_is_a_message_and_loses_nothing(monkeypatch):
    from training.errors import StoreWriteError

    store = RunStore()
    expected = fill(store)
    run_id = store.list_runs()[0].id
    real_connect = sqlite3.connect
    monkeypatch.setattr(sqlite3, "connect", lambda *a, **k: FullDisk(real_connect(*a, **k)))
    with pytest.raises(StoreWriteError, match=r"could not be written \(database or disk is full\)"):
        store.record_epoch(run_id, "head", 9, {"loss": 0.1})
    monkeypatch.setattr(sqlite3, "connect", real_connect)
    assert seen(store) == expected  # the failed write left no trace


def test_a_full_disk_while_journaling_is_a_message(monkeypatch):
    import errno
    from pathlib import Path

    from training.errors import StoreWriteError

    store = RunStore()
    run = store.create_run("train", "vgg16", {}, "f", "/data")

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "open", full)
    with pytest.raises(StoreWriteError, match=r"events\.jsonl \(No space left on device\)"):
        store.append_event(run.id, {"event": "x"})


def test_a_killed_run_is_interrupted_in_list_show_and_json(cli):
    store = RunStore()
    run = store.create_run("train", "vgg16", {}, "f", "/data")
    gone = subprocess.Popen(["true"])
    gone.wait()
    with sqlite3.connect(store.db_path) as conn:
        conn.execute("UPDATE runs SET pid = ? WHERE id = ?", (gone.pid, run.id))
    assert "interrupted" in cli("runs", "list").out
    assert "interrupted" in cli("runs", "show", run.id).out
    assert json.loads(cli("runs", "show", run.id, "--json").out)["status"] == "interrupted"
    assert "running" not in cli("runs", "list").out


def test_the_app_offers_to_rebuild_a_damaged_index(babysitter_home):
    from streamlit.testing.v1 import AppTest

    from tests.cli_process import ROOT

    store = RunStore()
    expected = fill(store)
    damage(store.db_path, "random-bytes")
    at = AppTest.from_file(str(ROOT / "app" / "streamlit_app.py"), default_timeout=120).run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("is damaged" in e.value and "runs repair" in e.value for e in at.error)
    at.button(key="repair_index").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("Indexed 2 run(s)" in s.value for s in at.success)
    assert seen(RunStore()) == expected
