"""The index's rows and the run folders under damage (issue 22, round two).

A row of the index that cannot be read hides only itself: every listing (CLI and the pages that
list runs) names it and ``runs repair``, which rebuilds it from its folder. Repair reads a
journal as a file anyone could have edited: a bad line is skipped naming the file and the line,
a run is replayed all or nothing, and no symbolic link is followed.
"""

from __future__ import annotations

import json
import sqlite3

import pytest

from tests.hostile.test_store import damage, fill, seen
from training.store import RunStore, trials

REPAIR = "run `python -m training runs repair`"
ROW_DAMAGE = {
    "summary-json": ("summary_json", "{not json"),
    "config-not-an-object": ("config_json", "[]"),
    "summary-not-an-object": ("summary_json", "5"),
    "unknown-status": ("status", "bogus"),
    "pid-not-a-number": ("pid", "abc"),
}


def completed(store: RunStore, label: str) -> str:
    run = store.create_run("train", label, {"backbone": label}, "fp", "/data")
    store.record_epoch(run.id, "head", 1, {"loss": 0.5, "val_accuracy": 0.8})
    store.set_status(run.id, "completed", summary={"best_val_accuracy": 0.8})
    return run.id


def damage_row(store: RunStore, run_id: str, column: str, value: str) -> None:
    with sqlite3.connect(store.db_path) as conn:
        conn.execute(f"UPDATE runs SET {column} = ? WHERE id = ?", (value, run_id))


def two_runs_one_damaged(how: str = "summary-json") -> tuple[RunStore, str, str]:
    store = RunStore()
    good, bad = completed(store, "vgg16"), completed(store, "resnet50")
    damage_row(store, bad, *ROW_DAMAGE[how])
    return store, good, bad


@pytest.mark.parametrize("how", ROW_DAMAGE)
def test_a_damaged_row_hides_only_itself_and_runs_list_names_it(cli, how):
    store, good, bad = two_runs_one_damaged(how)
    listed = cli("runs", "list")
    assert listed.code == 0 and good in listed.out and bad not in listed.out
    assert f"1 run could not be read: {bad!r}" in listed.err and REPAIR in listed.err
    assert listed.err.count("could not be read") == 1  # one line, not one per row
    assert [r.id for r in store.list_runs()] == [good]
    assert store.unreadable_runs() == [bad]
    shown = cli("runs", "show", bad)
    assert shown.code != 0 and "cannot be read" in shown.err and "runs repair" in shown.err


@pytest.mark.parametrize(
    "name", ["runs", "results", "predict", "monitor", "command_center", "home"]
)
def test_every_page_that_lists_runs_warns_of_an_unreadable_row(name):
    from tests.apptest import page

    _, good, bad = two_runs_one_damaged()
    at = page(name)
    warned = [w.value for w in at.warning if "could not be read" in w.value]
    assert len(warned) == 1, [w.value for w in at.warning]
    assert f"1 run could not be read: {bad!r}" in warned[0] and REPAIR in warned[0]
    if name == "runs":  # the other run is listed, not "No runs yet"
        assert list(at.dataframe[0].value["id"]) == [good]


def test_the_warning_offers_the_repair_and_goes_once_it_is_done():
    from tests.apptest import page

    _, good, bad = two_runs_one_damaged()
    at = page("runs")
    at.button(key="repair_rows").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("Indexed 1 run(s)" in s.value for s in at.success)
    assert not [w.value for w in at.warning if "could not be read" in w.value]
    assert sorted(at.dataframe[0].value["id"]) == sorted([good, bad])


def test_repair_rebuilds_a_damaged_row_from_its_folder(cli):
    store, _, bad = two_runs_one_damaged()
    with sqlite3.connect(store.db_path) as conn:
        conn.execute("UPDATE runs SET summary_json = NULL WHERE id = ?", (bad,))
    expected = seen(store)
    damage_row(store, bad, *ROW_DAMAGE["summary-json"])
    result = cli("runs", "repair")
    assert result.code == 0, result.out
    assert "healthy" not in result.out and "could not be read" in result.out
    assert bad in result.out and "Indexed 1 run(s)" in result.out
    repaired = RunStore()
    assert repaired.unreadable_runs() == []
    again = seen(repaired)
    (row,) = [r for r in again["runs"] if r["id"] == bad]
    assert row["summary"] == {"best_val_accuracy": 0.8}  # from the journal
    row["summary"] = None
    assert again == expected
    (kept,) = store.home.glob("babysitter.sqlite.corrupt-*")  # the old index, as it was
    assert str(kept) in result.out
    with sqlite3.connect(kept) as conn:
        assert conn.execute("SELECT summary_json FROM runs WHERE id = ?", (bad,)).fetchone() == (
            "{not json",
        )
    assert cli("runs", "repair").out.startswith(f"The run index {store.db_path} is healthy.")


def test_repair_removes_a_row_with_no_folder_and_keeps_it_in_a_copy(cli):
    store = RunStore()
    good, renamed = completed(store, "vgg16"), completed(store, "x")
    with sqlite3.connect(store.db_path) as conn:
        conn.execute("UPDATE runs SET id = '../../etc' WHERE id = ?", (renamed,))
    result = cli("runs", "repair")
    assert result.code == 1 and "'../../etc'" in result.out and "no run folder" in result.out
    assert RunStore().unreadable_runs() == []  # and the renamed run is back from its folder
    assert [r.id for r in RunStore().list_runs()] == [renamed, good]
    (kept,) = store.home.glob("babysitter.sqlite.corrupt-*")
    with sqlite3.connect(kept) as conn:
        assert conn.execute("SELECT 1 FROM runs WHERE id = '../../etc'").fetchone() == (1,)


BAD_LINES = {
    "a list": "[]",
    "a number": "7",
    "huge epoch": '{"event": "epoch", "phase": "head", "epoch": 100000000000000000000000}',
    "fractional epoch": '{"event": "epoch", "phase": "head", "epoch": 1.5, "metrics": {}}',
    "epoch as text": '{"event": "epoch", "phase": "head", "epoch": "3", "metrics": {}}',
    "epoch as a boolean": '{"event": "epoch", "phase": "head", "epoch": true, "metrics": {}}',
    "huge stage": '{"event": "stage", "stage": 1e400, "space": {}, "trials": 3}',
    "huge pid": '{"event": "status", "status": "running", "pid": 100000000000000000000000}',
    "unknown status": '{"event": "status", "status": "exploded"}',
    "infinite seconds": '{"event": "trial", "trial_id": "s1-9", "stage": 1, "status": '
    '"completed", "hyperparameters": {}, "score": 0.5, "history": [], "seconds": Infinity}',
    "time not a time": '{"time": "yesterday", "event": "note"}',
    "deep nesting": "[" * 100_000 + "]" * 100_000,
}


@pytest.mark.parametrize("bad", BAD_LINES.values(), ids=BAD_LINES)
def test_repair_skips_a_bad_journal_line_naming_the_file_and_line(cli, bad):
    store = RunStore()
    expected = fill(store)
    run = store.list_runs()[1]  # the train run: epochs, findings, a summary
    events = store.artifact(run.id, "events")
    lines = events.read_text().splitlines()
    events.write_text("\n".join([*lines[:3], bad, *lines[3:]]) + "\n")
    damage(store.db_path, "random-bytes")
    result = cli("runs", "repair")
    assert result.code == 1 and f"{events} line 4:" in result.out
    assert "Indexed 2 run(s)" in result.out
    assert seen(RunStore()) == expected  # the other lines replayed, nothing else changed


def test_a_run_that_fails_part_way_through_replay_leaves_no_trace(cli, monkeypatch):
    store = RunStore()
    expected = fill(store)
    damage(store.db_path, "random-bytes")
    real, calls = trials.record_trial, []

    def second_fails(*args, **kwargs):  # after the search's row, its stage and first trial
        calls.append(args)
        if len(calls) == 2:
            raise sqlite3.IntegrityError("a trial the index cannot hold")
        real(*args, **kwargs)

    monkeypatch.setattr(trials, "record_trial", second_fails)
    result = cli("runs", "repair")
    assert result.code == 1 and "a trial the index cannot hold" in result.out
    half = RunStore()
    assert [r.kind for r in half.list_runs()] == ["train"]
    with sqlite3.connect(half.db_path) as conn:  # nothing of the search left behind
        for table in ("trials", "stages"):
            assert conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone() == (0,)
    monkeypatch.setattr(trials, "record_trial", real)
    assert cli("runs", "repair").code == 0  # the same command resumes
    assert seen(RunStore()) == expected


def _link_config_to_passwd(store: RunStore, run_id: str, tmp_path) -> str:
    config = store.artifact(run_id, "config")
    config.unlink()
    config.symlink_to("/etc/passwd")
    return str(config)


def _link_events_outside(store: RunStore, run_id: str, tmp_path) -> str:
    events = store.artifact(run_id, "events")
    outside = tmp_path / "elsewhere.jsonl"
    events.rename(outside)
    events.symlink_to(outside)
    return str(events)


def _link_folder_to_another_home(store: RunStore, run_id: str, tmp_path) -> str:
    other = RunStore(tmp_path / "other-home")
    foreign = completed(other, "foreign")
    link = store.home / "runs" / foreign
    link.symlink_to(other.run_dir(foreign), target_is_directory=True)
    return str(link)


@pytest.mark.parametrize(
    "link", [_link_config_to_passwd, _link_events_outside, _link_folder_to_another_home]
)
def test_repair_follows_no_symbolic_link(cli, tmp_path, link):
    store = RunStore()
    first, second = completed(store, "vgg16"), completed(store, "resnet50")
    named = link(store, second, tmp_path)
    damage(store.db_path, "random-bytes")
    result = cli("runs", "repair")
    assert result.code == 1 and f"{named}: a symbolic link" in result.out
    assert "root:" not in result.out  # /etc/passwd never read
    ids = [r.id for r in RunStore().list_runs()]
    assert first in ids and (second in ids) == (link is _link_folder_to_another_home)
    assert len(ids) == 1 + (link is _link_folder_to_another_home)


BAD_JOB_IDS = {
    "superscript-two": "²",
    "5000-digits": "9" * 5000,
    "negative": "-1",
    "fraction": "1.5",
    "hex": "0x1f",
    "leading-space": " 7",
    "arabic-indic-three": "٣",
}


@pytest.mark.parametrize("raw", BAD_JOB_IDS.values(), ids=BAD_JOB_IDS)
def test_a_bad_job_id_in_the_environment_is_ignored_with_one_warning(monkeypatch, capsys, raw):
    monkeypatch.setenv("BABYSITTER_JOB_ID", raw)
    store = RunStore()
    run = store.create_run("train", "vgg16", {}, "fp", "/data")
    store.claim(run.id)
    err = capsys.readouterr().err
    assert err.count("BABYSITTER_JOB_ID") == 1 and "ignored" in err and "Traceback" not in err
    assert [e.get("job_id") for e in store.events(run.id)] == [None, None]


def test_a_good_job_id_is_recorded(monkeypatch, capsys):
    monkeypatch.setenv("BABYSITTER_JOB_ID", "42")
    store = RunStore()
    run = store.create_run("train", "vgg16", {}, "fp", "/data")
    assert store.events(run.id)[0]["job_id"] == 42 and capsys.readouterr().err == ""


def test_the_job_wrapper_refuses_a_job_id_that_is_not_one(capsys):
    from training.jobs import main

    assert main(["run", "²", "--", "true"]) == 2
    err = capsys.readouterr().err
    assert "JOB_ID" in err and "Traceback" not in err


def test_the_journal_reader_skips_lines_that_are_not_objects():
    store = RunStore()
    run = store.create_run("train", "vgg16", {}, "fp", "/data")
    with store.artifact(run.id, "events").open("a") as f:
        f.write("[]\n7\n" + "[" * 100_000 + "\n" + json.dumps({"event": "x"}) + "\n")
    assert [e["event"] for e in store.events(run.id)] == ["created", "x"]
