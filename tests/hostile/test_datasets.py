"""Dataset folders a careless or hostile user points ``audit`` and ``train`` at: a missing path,
a file, nothing to learn from, odd names, links out of the folder. Each exits with its code and
one clear message, records no run, and leaves every file outside the home as it was.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.hostile.conftest import snapshot
from tests.imagegen import make_image_folder
from training.store import RunStore

TRAIN = ("train", "--backbone", "VGG16", "--weights", "none", "--image-size", "32")
"""``train`` flags that build nothing before the data is judged."""


def outside_home(root: Path) -> dict[str, str]:
    """Everything under ``root`` but the home, which the conftest places at ``root/home``."""
    return {k: v for k, v in snapshot(root).items() if k != "home" and not k.startswith("home/")}


@pytest.fixture
def judge(cli, tmp_path):
    """Run a command on a dataset: exit code and output, nothing changed, no run recorded."""

    def run(data: Path, code: int, *command: str):
        before = outside_home(tmp_path)
        outcome = cli(*(command or ("audit",)), data)
        assert outcome.code == code, outcome.out + outcome.err
        assert outside_home(tmp_path) == before
        assert RunStore().list_runs() == []
        return outcome

    return run


def test_a_missing_path_is_named(judge, tmp_path):
    outcome = judge(tmp_path / "nowhere", 1)
    assert outcome.err == f"error: Dataset not found: {tmp_path / 'nowhere'}; check the path.\n"


@pytest.mark.parametrize("name", ["notes.txt", "cat.png"])
def test_a_file_instead_of_a_folder_is_refused(judge, tmp_path, name):
    """A single image or a text file is neither a dataset folder nor an archive."""
    make_image_folder(tmp_path / "d", {"cat": 1})
    (tmp_path / name).write_bytes((tmp_path / "d" / "cat" / "img_0001.png").read_bytes())
    outcome = judge(tmp_path / name, 1)
    assert f"{tmp_path / name} is neither a folder nor a .zip/.tar archive" in outcome.err
    assert "point at a folder of class sub-folders or a .zip of one" in outcome.err


def test_a_named_pipe_as_the_dataset_is_refused_not_read(cli, tmp_path):
    """Opening a FIFO to sniff its type would block forever; it is not a regular file."""
    os.mkfifo(tmp_path / "data.zip")
    outcome = cli("audit", tmp_path / "data.zip")
    (tmp_path / "data.zip").unlink()  # before any snapshot: reading it would block
    assert outcome.code == 1
    assert "data.zip is neither a folder nor a .zip/.tar archive" in outcome.err
    assert outside_home(tmp_path) == {} and RunStore().list_runs() == []


@pytest.mark.parametrize("command", [(), TRAIN], ids=["audit", "train"])
def test_an_empty_folder_is_untrainable(judge, tmp_path, command):
    (tmp_path / "data").mkdir()
    outcome = judge(tmp_path / "data", 2, *command)
    message = f"no readable images in {tmp_path / 'data'}; expected one sub-folder per class"
    assert message in (outcome.err if command else outcome.out)


@pytest.mark.parametrize("command", [(), TRAIN], ids=["audit", "train"])
def test_one_class_only_is_untrainable(judge, tmp_path, command):
    data = make_image_folder(tmp_path / "data", {"cat": 4})
    outcome = judge(data, 2, *command)
    message = "only one class ('cat') has readable images; a classifier needs at least 2 classes"
    assert message in (outcome.err if command else outcome.out)


def test_class_folders_without_images_are_left_out_naming_them(judge, tmp_path):
    """An empty class and one of only a text file: warned about, the rest stays trainable."""
    data = make_image_folder(tmp_path / "data", {"cat": 3, "dog": 3})
    (data / "bird").mkdir()
    (data / "fish").mkdir()
    (data / "fish" / "notes.txt").write_text("to do: photograph fish")
    outcome = judge(data, 0)
    assert "! empty class folder(s) left out: 'bird', 'fish'" in outcome.out
    assert "fish/notes.txt: not an image file extension (.txt)" in outcome.out


def test_only_hidden_and_system_files_are_untrainable(judge, tmp_path):
    """``.*`` files, ``._*`` forks, ``.DS_Store`` and ``__MACOSX``: ignored, and said so."""
    data = make_image_folder(tmp_path / "data", {"cat": 2, "dog": 2})
    for path in sorted(data.rglob("*.png")):
        path.rename(path.with_name("." + path.name))
    (data / "__MACOSX").mkdir()
    (data / "__MACOSX" / "._img.png").write_bytes(b"fork")
    (data / "cat" / ".DS_Store").write_bytes(b"x")
    outcome = judge(data, 2)
    assert "(6 system/hidden file(s) ignored)" in outcome.out
    assert "no readable images in" in outcome.out
    assert "empty class folder(s) left out: 'cat', 'dog'" in outcome.out


def test_a_class_folder_name_with_control_characters_is_refused_naming_it(judge, tmp_path):
    """The name is the class every report shows: printed escaped, and refused until renamed."""
    data = make_image_folder(tmp_path / "data", {"cat": 3, "dog\nbad": 3, "fi\x1b[2Jsh": 3})
    outcome = judge(data, 2)
    assert "\x1b" not in outcome.out
    assert r"control character (newline, tab…): 'dog\nbad', 'fi\x1b[2Jsh'; rename" in outcome.out
    assert "\n  dog\\nbad " in outcome.out  # the table row, on one line
    outcome = judge(data, 2, *TRAIN)
    assert r"'dog\nbad', 'fi\x1b[2Jsh'; rename the folder(s)" in outcome.err


def test_file_names_with_terminal_escapes_are_shown_escaped(judge, tmp_path):
    """A skipped or unreadable file's name is printed: its escapes must not reach the terminal."""
    data = make_image_folder(tmp_path / "data", {"cat": 3, "dog": 3})
    (data / "cat" / "\x1b]0;pwned\x07.txt").write_text("x")
    (data / "dog" / "bad\r.png").write_text("x")
    outcome = judge(data, 0)
    assert "\x1b" not in outcome.out and "\x07" not in outcome.out and "\r" not in outcome.out
    assert r"cat/\x1b]0;pwned\x07.txt: not an image file extension (.txt)" in outcome.out
    assert r"dog/bad\r.png: not an image Pillow can decode" in outcome.out


def test_many_one_image_classes_give_one_short_message(judge, tmp_path):
    """500 classes of one image: the refusal names five and counts the rest, on one line."""
    data = make_image_folder(tmp_path / "data", {f"class_{i:03d}": 1 for i in range(500)}, size=8)
    err = judge(data, 2, *TRAIN).err
    message = err[err.index("error: ") :]  # after the audit's progress bar
    assert "500 classes have only 1 readable image each" in message
    assert "'class_000'" in message and "and 495 more" in message
    assert message.count("\n") == 1 and len(message) < 600 + len(str(data))


def test_split_folders_without_train_are_refused(judge, tmp_path):
    data = make_image_folder(tmp_path / "data", splits={"val": {"a": 2, "b": 2}, "test": {"a": 2}})
    outcome = judge(data, 1)
    assert "Found split folders (test, val) but no train folder; add a train/ folder" in outcome.err


def test_a_splits_layout_without_val_is_split_from_train(judge, tmp_path):
    """``train/`` alone is a valid layout: validation is drawn from it, nothing is refused."""
    data = make_image_folder(tmp_path / "data", splits={"train": {"a": 3, "b": 3}})
    outcome = judge(data, 0)
    assert "Layout: splits" in outcome.out and "Verdict: TRAINABLE" in outcome.out


def test_a_val_class_missing_from_train_is_refused(judge, tmp_path):
    data = make_image_folder(
        tmp_path / "data", splits={"train": {"a": 3, "b": 3}, "val": {"a": 1, "c": 2}}
    )
    outcome = judge(data, 2)
    assert "class 'c' has images in val but none in train; add training images" in outcome.out


def test_symlinks_out_of_the_dataset_are_skipped_not_followed(judge, tmp_path):
    """A class folder, an image and a loop linked in: none is read, each listed with why."""
    data = make_image_folder(tmp_path / "data", {"cat": 3, "dog": 3})
    outside = make_image_folder(tmp_path / "elsewhere", {"secret": 2})
    (data / "secret").symlink_to(outside / "secret")
    (data / "cat" / "stolen.png").symlink_to(outside / "secret" / "img_0001.png")
    (data / "cat" / "passwd.png").symlink_to("/etc/passwd")
    (data / "copy_of_dog").symlink_to(data / "dog")  # inside, but would count dog twice
    (data / "dog" / "loop.png").symlink_to(data / "dog" / "loop.png")
    (data / "dog" / "gone.png").symlink_to(data / "dog" / "missing.png")
    (data / "dog" / "alias.png").symlink_to(data / "cat" / "img_0001.png")
    outcome = judge(data, 0)
    away = "symlink pointing outside the dataset; copy the files themselves into the dataset"
    for rel, why in [
        ("secret", away),
        ("cat/stolen.png", away),
        ("cat/passwd.png", away),
        ("copy_of_dog", "symlinked folder, not followed; copy the files themselves"),
        ("dog/loop.png", away),
        ("dog/gone.png", "broken symlink (its target is missing); remove it"),
    ]:
        assert f"    {rel}: {why}" in outcome.out
    assert "2 class(es); 7 image file(s), 7 readable" in outcome.out  # the alias inside is kept
    assert "secret" not in outcome.out.split("Problems:")[0]
