"""``$BABYSITTER_HOME`` that cannot hold a run store: one message, exit 2, nothing created."""

from __future__ import annotations

import os

import pytest

from tests.hostile.conftest import snapshot
from tests.imagegen import make_image_folder

TRAIN = ("--backbone", "MobileNetV2", "--weights", "none", "--image-size", "32")


def unusable_home(tmp_path, kind: str):
    """A home of this kind, and what the message must say about it."""
    if kind == "a file":
        home = tmp_path / "home_is_a_file"
        home.write_text("x")
        return home, "is a file, not a folder"
    if kind == "missing parent":
        return tmp_path / "missing" / "home", "parent folder"
    if kind == "cannot be created":
        return tmp_path / "a_file" / "home", "parent folder"
    if os.geteuid() == 0:
        pytest.skip("root can write anywhere")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    return locked, "not writable"


COMMANDS = {
    "runs list": lambda data: ("runs", "list"),
    "runs show": lambda data: ("runs", "show", "abc"),
    "runs repair": lambda data: ("runs", "repair"),
    "audit": lambda data: ("audit", data),
    "train": lambda data: ("train", data, *TRAIN),
    "check": lambda data: ("check", data, *TRAIN),
    "export": lambda data: ("export", "abc"),
    "search": lambda data: ("search", data, *TRAIN, "--trials", "2"),
}


@pytest.mark.parametrize("kind", ["a file", "missing parent", "cannot be created", "unwritable"])
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_an_unusable_home_is_one_message_and_exit_2(cli, tmp_path, monkeypatch, kind, command):
    if kind == "cannot be created":
        (tmp_path / "a_file").write_text("x")
    data = make_image_folder(tmp_path / "data", {"cat": 3, "dog": 3})
    home, message = unusable_home(tmp_path, kind)
    monkeypatch.setenv("BABYSITTER_HOME", str(home))
    before = snapshot(tmp_path)
    argv = COMMANDS[command](data)
    result = cli(*argv, tool="tuner" if command == "search" else "training")
    assert result.code == 2
    assert message in result.err and str(home) in result.err and "$BABYSITTER_HOME" in result.err
    assert snapshot(tmp_path) == before  # nothing created on the way


def test_the_app_shows_an_unusable_home_as_one_error_panel(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from tests.cli_process import ROOT

    home = tmp_path / "home_is_a_file"
    home.write_text("x")
    monkeypatch.setenv("BABYSITTER_HOME", str(home))
    at = AppTest.from_file(str(ROOT / "app" / "streamlit_app.py"), default_timeout=120).run()
    assert not at.exception, [e.value for e in at.exception]
    assert len(at.error) == 1 and "is a file, not a folder" in at.error[0].value
