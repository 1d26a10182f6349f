"""Input a careless or hostile user gives: each case exits non-zero with one clear message,
records nothing, and leaves the files around it as they were (export targets are in
``tests/test_export_safety.py``)."""

from __future__ import annotations

import os

import pytest

from tests.imagegen import make_image_folder
from tests.test_predict_export import tiny_model
from training.cli import main as training_main
from training.data.audit import audit_dataset, raise_if_untrainable
from training.data.scan import scan_dataset
from training.errors import UnusableDatasetError
from training.runs import RunStore
from tuner.cli import main as tuner_main


@pytest.mark.parametrize("top_k", ["0", "-5"])
def test_predict_refuses_a_top_k_below_1(tmp_path, capsys, top_k):
    model = tmp_path / "m.keras"
    tiny_model().save(model)
    image = make_image_folder(tmp_path / "data", {"cat": 1, "dog": 1}) / "cat"
    code = training_main(["predict", str(model), str(next(image.iterdir())), "--top-k", top_k])
    err = capsys.readouterr().err
    assert code != 0
    assert f"Expected --top-k to be at least 1. Received: {top_k}" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "space", ["lr=abc", "nonsense=1:2", "lr=1e-2:1e-4", "optimizer=adam,rmsprop", "lr"]
)
def test_a_bad_space_is_refused_before_any_run_is_recorded(image_folder, capsys, space):
    code = tuner_main(
        [
            *("search", str(image_folder), "--backbone", "VGG16", "--weights", "none"),
            *("--image-size", "32", "--space", space),
        ]
    )
    err = capsys.readouterr().err
    assert code != 0 and "--space" in err and "Traceback" not in err
    assert RunStore().list_runs() == []


def test_many_one_image_classes_give_one_short_message(tmp_path):
    root = make_image_folder(tmp_path / "data", {f"class_{i:03d}": 1 for i in range(500)}, size=8)
    with pytest.raises(UnusableDatasetError) as refused:
        raise_if_untrainable(audit_dataset(scan_dataset(root)))
    message = str(refused.value)
    assert "500 classes have only 1 readable image each" in message
    assert "'class_000'" in message and "and 495 more" in message
    assert len(message) < 600 and "\n" not in message


def test_a_class_folder_name_with_a_newline_is_refused_naming_it(tmp_path):
    root = make_image_folder(tmp_path / "data", {"cat": 3, "dog\nbad": 3, "fish": 3}, size=8)
    report = audit_dataset(scan_dataset(root))
    with pytest.raises(UnusableDatasetError, match=r"control character.*'dog\\nbad'"):
        raise_if_untrainable(report)


def home_cases(tmp_path):
    """``$BABYSITTER_HOME`` values that cannot hold a run store, with what the message says."""
    a_file = tmp_path / "home_is_a_file"
    a_file.write_text("x")
    yield a_file, "is a file, not a folder"
    yield tmp_path / "missing" / "home", "parent folder"
    if os.geteuid() != 0:  # root can write anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        yield locked, "not writable"


@pytest.mark.parametrize("command", [["runs", "list"], ["runs", "show", "abc"]])
def test_an_unusable_home_is_one_message_and_exit_2(tmp_path, monkeypatch, capsys, command):
    for home, message in home_cases(tmp_path):
        monkeypatch.setenv("BABYSITTER_HOME", str(home))
        assert training_main(command) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and str(home) in err
    assert not (tmp_path / "missing").exists()  # nothing created on the way


def test_the_app_shows_an_unusable_home_as_one_error_panel(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from tests.cli_process import ROOT

    home = tmp_path / "home_is_a_file"
    home.write_text("x")
    monkeypatch.setenv("BABYSITTER_HOME", str(home))
    at = AppTest.from_file(str(ROOT / "app" / "streamlit_app.py"), default_timeout=120).run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("is a file, not a folder" in e.value for e in at.error)


def test_a_model_file_with_a_huge_config_is_refused_before_parsing(tmp_path, monkeypatch):
    import zipfile

    from training.errors import ModelFileError
    from training.predict import load_model_file

    good = tmp_path / "good.keras"
    tiny_model().save(good)
    bloated = tmp_path / "bloated.keras"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(bloated, "w", zipfile.ZIP_DEFLATED) as out:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "config.json":
                data = data + b" " * (20 * 1024**2)  # valid JSON, 20 MB of whitespace
            out.writestr(info.filename, data)
    assert bloated.stat().st_size < 1024**2
    parsed = []
    monkeypatch.setattr("keras.saving.load_model", lambda *a, **k: parsed.append(1))
    with pytest.raises(ModelFileError, match=r"config\.json is 20,9\d\d,\d\d\d bytes.*limit"):
        load_model_file(bloated)
    assert parsed == []  # refused before Keras read it


def test_damaged_store_rows_are_skipped_naming_them_and_refused_when_asked_for(capsys):
    import sqlite3

    store = RunStore()
    good = store.create_run("train", "vgg16", {"backbone": "VGG16"}, "f1", "/data")
    for bad_id, config in (("20990101-000000-bad-json-0000", "{not json"), ("../../etc", "{}")):
        store.create_run("train", "vgg16", {}, "f", "/data")
        with sqlite3.connect(store.db_path) as conn:
            newest = conn.execute("SELECT id FROM runs ORDER BY rowid DESC LIMIT 1").fetchone()[0]
            conn.execute(
                "UPDATE runs SET id = ?, config_json = ? WHERE id = ?", (bad_id, config, newest)
            )
    assert training_main(["runs", "list"]) == 0
    out, err = capsys.readouterr()
    assert good.id in out and "etc" not in out
    assert "'../../etc'" in err and "'20990101-000000-bad-json-0000'" in err
    assert "Traceback" not in err
    for asked in ("../../etc", "20990101-000000-bad-json-0000"):
        assert training_main(["runs", "show", asked]) != 0
        err = capsys.readouterr().err
        assert "cannot be read" in err and "Traceback" not in err
