"""Shared fixtures: an isolated run store and tiny image folders made on the fly."""

from __future__ import annotations

import os

import pytest

from tests.imagegen import make_image_folder


@pytest.fixture(scope="session", autouse=True)
def shared_compile_cache(tmp_path_factory):
    """One JAX compilation cache per test worker, as ``$BABYSITTER_COMPILE_CACHE`` shares one
    between homes: tests that train the same tiny model compile it once (no effect on
    TensorFlow). Per worker, so two processes never write one entry at the same time."""
    folder = tmp_path_factory.getbasetemp() / "compiled"
    os.environ["BABYSITTER_COMPILE_CACHE"] = str(folder)
    yield folder
    os.environ.pop("BABYSITTER_COMPILE_CACHE", None)


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
