"""The Datasets page: forgetting a dataset, uploads named as their archives, bad folders without
a made-up imbalance, a folder placeholder the page accepts, and an audit listing each duplicate
pair once with every unreadable file's reason in full. No training: runs are made by hand."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from streamlit.testing.v1 import AppTest

from app.roots import data_roots, within_roots
from tests.apptest import page
from tests.imagegen import make_image_folder, make_shapes_folder, zip_folder
from tests.test_app_monitor import train_run
from training.store import RunStore

CONFLICT = "same image in two classes"


def add_folder(folder: Path) -> AppTest:
    """The Datasets page after naming ``folder`` in its server-folder field."""
    at = page("datasets")
    at.text_input(key="folder").input(str(folder)).run()
    at.button(key="add_folder").click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def upload(archive: Path) -> AppTest:
    """The Datasets page after uploading ``archive`` and unpacking it."""
    at = page("datasets")
    at.file_uploader(key="upload").set_value(
        (archive.name, archive.read_bytes(), "application/zip")
    )
    at.run()
    at.button(key="unpack").click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def picked(at: AppTest) -> list[str]:
    """The datasets the Datasets page offers; none when it says there are none yet."""
    boxes = [b for b in at.selectbox if b.key == "dataset_pick"]
    return list(boxes[0].options) if boxes else []


def forget(at: AppTest) -> AppTest:
    at.button(key="forget").click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def first(folder: Path) -> Path:
    return sorted(folder.glob("*.png"))[0]


def notes(at: AppTest) -> list[str]:
    """The kind written beside each pair of the duplicates section, one per pair."""
    kinds = (CONFLICT, "duplicate")
    return [m.value for m in at.markdown if m.value in kinds or m.value.startswith("**leak")]


def test_forgetting_a_server_folder_drops_it_from_the_picker_and_keeps_its_files(tmp_path):
    folder = make_image_folder(tmp_path / "pets", {"cat": 3, "dog": 3})
    files = sorted(folder.rglob("*"))
    at = add_folder(folder)
    assert len(picked(at)) == 1
    at = forget(at)
    assert picked(at) == [] and "Forgot **pets**" in at.success[0].value
    assert sorted(folder.rglob("*")) == files
    assert str(folder) not in (RunStore().datasets_dir() / "folders.json").read_text()
    assert picked(page("datasets")) == []  # and on the next visit


def test_a_dataset_known_from_a_run_is_forgotten_but_the_run_stays(babysitter_home, tmp_path):
    store = RunStore(babysitter_home)
    make_image_folder(tmp_path / "data", {"cat": 3, "dog": 3})  # where train_run's config points
    run = train_run(store)
    at = page("datasets")
    assert len(picked(at)) == 1
    at = forget(at)
    assert picked(at) == [] and store.get_run(run.id).dataset == run.dataset
    assert len(picked(add_folder(tmp_path / "data"))) == 1  # named again: listed again


def test_an_upload_is_named_as_its_archive_and_deleted_only_once_confirmed(tmp_path):
    data = make_image_folder(tmp_path / "data", {"cat": 3, "dog": 3})
    at = upload(zip_folder(data, tmp_path / "pets.zip"))  # no top folder: unpacked into a hash
    root = Path(at.session_state["dataset"])
    assert picked(at) == ["pets"] and root.name != "pets"
    assert f"`{root}`" in [c.value for c in at.caption]  # the path in small print
    assert picked(page("datasets")) == ["pets"]  # the name is kept for later visits
    assert at.button(key="forget").disabled  # not without the box ticked
    confirm = next(c for c in at.checkbox if c.key.startswith("forget_confirm"))
    at = forget(confirm.check().run())
    assert not root.exists() and picked(at) == []
    assert data.is_dir() and len(list((data / "cat").iterdir())) == 3  # the source is not touched
    assert json.loads((RunStore().datasets_dir() / "names.json").read_text()) == {}


def test_uploads_sharing_a_name_are_told_apart_by_their_paths(tmp_path):
    one = make_image_folder(tmp_path / "one", {"cat": 2, "dog": 2})
    two = make_image_folder(tmp_path / "two", {"cat": 3, "dog": 3})
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
    upload(zip_folder(one, tmp_path / "a" / "pets.zip"))
    at = upload(zip_folder(two, tmp_path / "b" / "pets.zip"))
    options = picked(at)
    assert len(options) == 2 and all(o.startswith("pets — ") for o in options)


def test_an_empty_folder_shows_no_imbalance_and_no_counts_chart(tmp_path):
    (tmp_path / "empty").mkdir()
    at = add_folder(tmp_path / "empty")
    assert [m.value for m in at.metric] == ["0", "0", "0", "–"]
    assert not at.get("vega_lite_chart")
    assert "No readable images to count." in [c.value for c in at.caption]


def test_a_single_class_folder_shows_its_count_but_no_imbalance(tmp_path):
    at = add_folder(make_image_folder(tmp_path / "one", {"cat": 3}))
    assert at.metric[0].value == "1" and at.metric[3].value == "–"
    assert len(at.get("vega_lite_chart")) == 1


def test_the_folder_placeholder_is_a_folder_the_page_accepts(babysitter_home, monkeypatch):
    for allowed in (True, False):
        if not allowed:
            monkeypatch.delenv("BABYSITTER_DATA_ROOTS")  # only the home's datasets folder
        shown = page("datasets").text_input(key="folder").placeholder
        assert within_roots(shown, data_roots(babysitter_home)) is not None, shown


def test_the_same_image_in_two_classes_is_one_pair(tmp_path):
    folder = make_image_folder(tmp_path / "pets", {"cat": 4, "dog": 4})
    shutil.copy(first(folder / "cat"), folder / "dog" / "same.png")
    assert notes(add_folder(folder)) == [CONFLICT]


def test_an_exact_leak_is_one_pair_not_also_a_duplicate(tmp_path):
    root = make_shapes_folder(tmp_path / "shapes", {"train": 6, "val": 3})
    shutil.copy(first(root / "train" / "square"), root / "val" / "square" / "copy.png")
    assert notes(add_folder(root)) == ["**leak (exact)**: identical pixels"]


def test_unreadable_files_are_listed_with_their_reason_in_full(tmp_path):
    folder = make_image_folder(tmp_path / "pets", {"cat": 3, "dog": 3})
    (folder / "cat" / "broken.png").write_bytes(b"not an image")
    at = add_folder(folder)
    (table,) = at.table  # static: its cells wrap, where a grid clips them
    (reason,) = table.value["reason"]
    assert reason.startswith("not an image Pillow can decode") and reason.endswith("remove it")
    assert list(table.value["file"]) == ["cat/broken.png"]
