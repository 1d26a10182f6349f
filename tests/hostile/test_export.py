"""Export never destroys: refused targets and failed writes leave everything as it was."""

from __future__ import annotations

import errno
import os

import keras
import pytest

import training.export
from tests.hostile.conftest import snapshot
from tests.test_predict_export import tiny_model
from training.cli import main as cli_main
from training.errors import ConfigError, ExportError
from training.export import export_model
from training.predict import load_model_file

pytestmark = pytest.mark.core

needs_tensorflow = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="SavedModel and TFLite need TensorFlow"
)


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "m.keras"
    tiny_model().save(path)
    return path


def test_an_existing_file_is_refused_without_force_and_kept(model_file, tmp_path):
    target = tmp_path / "keep.keras"
    target.write_text("my notes")
    with pytest.raises(ExportError, match=r"keep\.keras already exists.*--force"):
        export_model(str(model_file), "keras", target)
    assert target.read_text() == "my notes"


def test_force_replaces_only_an_earlier_export_of_the_same_format(model_file, tmp_path):
    notes = tmp_path / "notes.keras"
    notes.write_text("not a model")
    with pytest.raises(ExportError, match="only an earlier keras export"):
        export_model(str(model_file), "keras", notes, force=True)
    assert notes.read_text() == "not a model"
    earlier = export_model(str(model_file), "keras", tmp_path / "out" / "copy.keras")
    again = export_model(str(model_file), "keras", earlier, force=True)
    assert load_model_file(again).get_layer("class_names").class_names == ["cat", "dog"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["copy.keras"]  # no temps


def test_the_home_and_folders_holding_it_are_never_a_target(model_file, babysitter_home):
    export_model(str(model_file), "keras", babysitter_home.parent / "elsewhere.keras")
    before = snapshot(babysitter_home)
    for target in (babysitter_home / "x.keras", babysitter_home / "runs" / "y.keras"):
        with pytest.raises(ExportError, match="holds the run store"):
            export_model(str(model_file), "keras", target, force=True)
    assert snapshot(babysitter_home) == before


@pytest.mark.parametrize(
    ("fmt", "name", "message"),
    [
        ("keras", "no_extension", r"end in \.keras"),
        ("keras", "model.h5", r"end in \.keras"),
        ("tflite", "model.keras", r"end in \.tflite"),
        ("savedmodel", "model.keras", "a folder name"),
    ],
)
def test_the_suffix_follows_the_format(model_file, tmp_path, monkeypatch, fmt, name, message):
    monkeypatch.setattr(keras.backend, "backend", lambda: "tensorflow")  # refused before export
    with pytest.raises(ConfigError, match=message):
        export_model(str(model_file), fmt, tmp_path / name)
    assert not (tmp_path / name).exists()


def test_a_folder_named_like_a_file_is_refused(model_file, tmp_path):
    folder = tmp_path / "looks.keras"
    (folder / "inside").mkdir(parents=True)
    (folder / "inside" / "data.txt").write_text("precious")
    for force in (False, True):
        with pytest.raises(ExportError):
            export_model(str(model_file), "keras", folder, force=force)
    assert (folder / "inside" / "data.txt").read_text() == "precious"


def test_a_failed_write_leaves_the_target_as_it_was(model_file, tmp_path, monkeypatch):
    target = export_model(str(model_file), "keras", tmp_path / "out" / "m.keras")
    before = target.read_bytes()

    def disk_full(source, destination):
        with open(destination, "wb") as fp:
            fp.write(b"partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(training.export.shutil, "copyfile", disk_full)
    with pytest.raises(ExportError, match=r"No space left on device.*nothing was changed"):
        export_model(str(model_file), "keras", target, force=True)
    assert target.read_bytes() == before
    assert [p.name for p in target.parent.iterdir()] == ["m.keras"]  # the temporary is gone


def test_an_unwritable_place_is_a_message_and_a_non_zero_exit(model_file, tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    code = cli_main(["export", str(model_file), "--output", str(blocker / "m.keras")])
    err = capsys.readouterr().err
    assert code != 0 and "Could not write the keras export" in err and "Traceback" not in err
    assert blocker.read_text() == "x"


def test_the_default_place_is_replaced_without_force(model_file):
    first = export_model(str(model_file), "keras")
    second = export_model(str(model_file), "keras")
    assert first == second and load_model_file(second) is not None


@needs_tensorflow
def test_savedmodel_force_replaces_an_earlier_one_never_another_folder(model_file, tmp_path):
    saved = export_model(str(model_file), "savedmodel", tmp_path / "sm")
    assert (saved / "saved_model.pb").is_file()
    again = export_model(str(model_file), "savedmodel", saved, force=True)
    assert (again / "saved_model.pb").is_file()
    other = tmp_path / "photos"
    other.mkdir()
    (other / "cat.jpg").write_bytes(b"jpeg")
    with pytest.raises(ExportError, match="not a SavedModel folder"):
        export_model(str(model_file), "savedmodel", other, force=True)
    assert (other / "cat.jpg").read_bytes() == b"jpeg"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "m.keras", "photos", "sm"]
