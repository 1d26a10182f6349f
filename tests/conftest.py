"""Shared fixtures: an isolated run store and tiny image folders made on the fly."""

from __future__ import annotations

import pytest

from tests.imagegen import make_image_folder


@pytest.fixture(autouse=True)
def babysitter_home(tmp_path, monkeypatch):
    """Every test gets its own empty ``$BABYSITTER_HOME``; the app may read datasets anywhere
    under the test's ``tmp_path`` (tests of the data roots set their own)."""
    home = tmp_path / "home"
    monkeypatch.setenv("BABYSITTER_HOME", str(home))
    monkeypatch.setenv("BABYSITTER_DATA_ROOTS", str(tmp_path))
    return home


@pytest.fixture
def image_folder(tmp_path):
    """Two classes of six 16 px PNGs each, class-named subfolders."""
    return make_image_folder(tmp_path / "data", {"cat": 6, "dog": 6})
