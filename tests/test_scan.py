"""Scanning real dataset folders (and archives) into labelled files, with reasons for the rest."""

from __future__ import annotations

import unicodedata

import pytest

from tests.imagegen import class_image, make_image_folder, zip_folder
from training.data import scan as scan_module
from training.data.scan import COMPLETE_MARKER, classes_missing, resolve_dataset, scan_dataset
from training.errors import DataError


def test_classes_layout(image_folder):
    scanned = scan_dataset(image_folder)
    assert scanned.layout == "classes"
    assert scanned.classes == ["cat", "dog"]
    assert scanned.splits == []
    assert len(scanned.files) == 12
    assert [f.rel for f in scanned.files] == sorted(f.rel for f in scanned.files)
    first = scanned.files[0]
    assert first.label == "cat" and first.split is None and first.path == image_folder / first.rel


def test_files_nested_inside_a_class_folder_take_the_top_folder_label(tmp_path):
    root = make_image_folder(tmp_path / "data", {"cat": 1, "dog": 1})
    (root / "cat" / "2019" / "summer").mkdir(parents=True)
    class_image(0, 99).save(root / "cat" / "2019" / "summer" / "deep.JPG", "JPEG")
    scanned = scan_dataset(root)
    deep = [f for f in scanned.files if f.rel.endswith("deep.JPG")]
    assert [f.label for f in deep] == ["cat"]


def test_non_images_loose_files_and_clutter_are_accounted_for(tmp_path):
    root = make_image_folder(tmp_path / "data", {"cat": 2, "dog": 2})
    (root / "readme.txt").write_text("about")
    class_image(0, 7).save(root / "loose.png")
    (root / "cat" / "labels.csv").write_text("a,b")
    (root / "dog" / "more.zip").write_bytes(b"PK\x05\x06" + bytes(18))
    for junk in (".DS_Store", "Thumbs.db", "desktop.ini", "._img_0001.png"):
        (root / "cat" / junk).write_bytes(b"x")
    (root / "__MACOSX" / "cat").mkdir(parents=True)
    (root / "__MACOSX" / "cat" / "._a.png").write_bytes(b"x")
    (root / ".git").mkdir()
    (root / ".git" / "x.png").write_bytes(b"x")
    scanned = scan_dataset(root)
    assert scanned.classes == ["cat", "dog"] and len(scanned.files) == 4
    reasons = dict(scanned.skipped)
    assert "not inside a class folder" in reasons["readme.txt"]
    assert "not inside a class folder" in reasons["loose.png"]
    assert "not an image file extension (.csv)" in reasons["cat/labels.csv"]
    assert "nested archive" in reasons["dog/more.zip"]
    assert set(scanned.ignored) >= {
        "cat/.DS_Store",
        "cat/Thumbs.db",
        "cat/desktop.ini",
        "cat/._img_0001.png",
        "__MACOSX",
        ".git",
    }


def test_unicode_and_space_class_names(tmp_path):
    decomposed = unicodedata.normalize("NFD", "café crème")
    root = make_image_folder(tmp_path / "data", {decomposed: 2, "chat noir": 2, "猫": 2})
    scanned = scan_dataset(root)
    assert scanned.classes == sorted(["café crème", "chat noir", "猫"])
    assert all(unicodedata.is_normalized("NFC", f.label) for f in scanned.files)
    assert all(f.path.is_file() for f in scanned.files)


def test_empty_class_folder_is_reported_not_a_class(tmp_path):
    root = make_image_folder(tmp_path / "data", {"cat": 2, "dog": 2})
    (root / "bird").mkdir()
    (root / "fish").mkdir()
    (root / "fish" / "notes.txt").write_text("no images yet")
    scanned = scan_dataset(root)
    assert scanned.classes == ["cat", "dog"]
    assert scanned.empty_classes == ["bird", "fish"]


def test_splits_layout_with_aliases(tmp_path):
    root = make_image_folder(
        tmp_path / "data",
        splits={
            "Train": {"cat": 3, "dog": 3},
            "validation": {"cat": 1, "dog": 1},
            "test": {"cat": 1},
        },
    )
    scanned = scan_dataset(root)
    assert scanned.layout == "splits"
    assert scanned.splits == ["train", "val", "test"]
    assert scanned.classes == ["cat", "dog"]
    by_split = {s: sum(f.split == s for f in scanned.files) for s in scanned.splits}
    assert by_split == {"train": 6, "val": 2, "test": 1}
    assert scanned.warnings == []


def test_class_only_in_val_is_reported(tmp_path):
    root = make_image_folder(
        tmp_path / "data", splits={"train": {"cat": 2, "dog": 2}, "valid": {"cat": 1, "bird": 1}}
    )
    scanned = scan_dataset(root)
    assert "bird" in scanned.classes
    assert classes_missing(scanned.files, "train") == {"bird": ["val"]}


def test_split_folders_without_train_are_an_error(tmp_path):
    root = make_image_folder(tmp_path / "data", splits={"val": {"cat": 1}, "test": {"cat": 1}})
    with pytest.raises(DataError, match="no train folder"):
        scan_dataset(root)


def test_missing_path_and_file_are_data_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        scan_dataset(tmp_path / "nowhere")
    (tmp_path / "file.png").write_bytes(b"x")
    with pytest.raises(DataError, match="Expected a dataset folder"):
        scan_dataset(tmp_path / "file.png")


def test_resolve_dataset_returns_folders_as_they_are(image_folder, tmp_path):
    assert resolve_dataset(image_folder, tmp_path / "work") == image_folder
    assert not (tmp_path / "work").exists()


def test_resolve_dataset_unpacks_a_zip_once(tmp_path, monkeypatch):
    folder = make_image_folder(tmp_path / "data", {"cat": 2, "dog": 2})
    archive = zip_folder(folder, tmp_path / "data.zip", top_level="data")
    work = tmp_path / "work"
    root = resolve_dataset(archive, work)
    assert root.name == "data" and root.parent.parent == work
    assert len(root.parent.name) == 16 and (root.parent / COMPLETE_MARKER).is_file()
    assert scan_dataset(root).classes == ["cat", "dog"]
    assert [p.name for p in work.iterdir()] == [root.parent.name]  # no temp folders left

    def no_second_unpack(*args, **kwargs):
        raise AssertionError("unpacked twice")

    monkeypatch.setattr(scan_module, "extract_archive", no_second_unpack)
    assert resolve_dataset(archive, work) == root


def test_resolve_dataset_redoes_an_interrupted_unpack(tmp_path):
    folder = make_image_folder(tmp_path / "data", {"cat": 2, "dog": 2})
    archive = zip_folder(folder, tmp_path / "flat.zip")
    root = resolve_dataset(archive, tmp_path / "work")
    (root / COMPLETE_MARKER).unlink()
    (root / "cat" / "img_0001.png").unlink()
    again = resolve_dataset(archive, tmp_path / "work")
    assert again == root and (again / "cat" / "img_0001.png").is_file()
    assert scan_dataset(again).classes == ["cat", "dog"]  # the marker is not a loose file


def test_resolve_dataset_refuses_other_files(tmp_path):
    (tmp_path / "data.txt").write_text("hello")
    with pytest.raises(DataError, match="neither a folder nor"):
        resolve_dataset(tmp_path / "data.txt", tmp_path / "work")
    with pytest.raises(DataError, match="not found"):
        resolve_dataset(tmp_path / "gone.zip", tmp_path / "work")
