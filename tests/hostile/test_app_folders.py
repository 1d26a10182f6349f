"""The app's "folder on the server" field reads only under the data roots, and says nothing
about paths outside them (not even whether they exist)."""

from __future__ import annotations

import json

import pytest
from streamlit.testing.v1 import AppTest

from tests.apptest import APP, TIMEOUT
from tests.imagegen import make_image_folder
from training.store import RunStore


@pytest.fixture
def datasets_page(monkeypatch, babysitter_home):
    """The app on its Datasets page (through the router, as a visitor reaches it)."""
    monkeypatch.delenv("BABYSITTER_DATA_ROOTS")  # the default: the home's datasets/ only
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    return at.switch_page("views/datasets.py")


def add_folder(at: AppTest, folder) -> AppTest:
    at.run()
    at.text_input(key="folder").input(str(folder)).run()
    return at.button(key="add_folder").click().run()


@pytest.mark.parametrize("asked", ["/etc", "/root", "/no/such/folder", "../..", "~"])
def test_a_folder_outside_the_roots_is_refused_the_same_way_and_not_remembered(
    datasets_page, asked
):
    at = add_folder(datasets_page, asked)
    assert not at.exception
    (error,) = at.error
    assert "Only dataset folders under" in error.value and asked not in error.value
    folders = RunStore().datasets_dir() / "folders.json"
    assert not folders.exists() or asked not in folders.read_text()
    assert "etc" not in " ".join(str(o) for s in at.selectbox for o in s.options)


def test_a_link_inside_a_root_that_points_out_is_refused(datasets_page, tmp_path):
    outside = make_image_folder(tmp_path / "private", {"cat": 2, "dog": 2})
    link = RunStore().datasets_dir() / "sneaky"
    link.symlink_to(outside)
    at = add_folder(datasets_page, link)
    assert any("Only dataset folders under" in e.value for e in at.error)


def test_remembered_folders_are_checked_again_when_read_back(datasets_page):
    inside = make_image_folder(RunStore().datasets_dir() / "pets", {"cat": 3, "dog": 3})
    (RunStore().datasets_dir() / "folders.json").write_text(json.dumps(["/etc", str(inside)]))
    at = datasets_page.run()
    assert not at.exception
    (picker,) = [s for s in at.selectbox if s.key == "dataset_pick"]
    assert picker.options == ["pets"] and picker.value == str(inside)


def test_a_folder_under_an_allowed_root_is_accepted(datasets_page, monkeypatch, tmp_path):
    images = tmp_path / "images"
    pets = make_image_folder(images / "pets", {"cat": 3, "dog": 3})
    monkeypatch.setenv("BABYSITTER_DATA_ROOTS", str(images))
    at = add_folder(datasets_page, pets)
    assert not at.exception and not at.error
    assert at.session_state["dataset"] == str(pets.resolve())
