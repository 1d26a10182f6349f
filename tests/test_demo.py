"""The demo dataset: deterministic, idempotent, atomic, varied, and separable by shape only."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from training.data import demo
from training.data.demo import CLASSES, MARKER, make_demo_dataset
from training.errors import ConfigError


def digests(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*.png"))
    }


def test_layout_counts_sizes_and_modes(tmp_path):
    root = make_demo_dataset(tmp_path / "demo", per_class=5, size=32)
    assert root == tmp_path / "demo"
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == sorted(CLASSES)
    assert 3 <= len(CLASSES) <= 4
    for cls in CLASSES:
        files = sorted((root / cls).iterdir())
        assert [f.name for f in files] == [f"{i:04d}.png" for i in range(5)]
        for f in files:
            with Image.open(f) as img:
                assert (img.format, img.mode, img.size) == ("PNG", "RGB", (32, 32))
    marker = json.loads((root / MARKER).read_text())
    assert (marker["per_class"], marker["size"], marker["seed"]) == (5, 32, 0)


def test_default_is_four_by_forty_at_48px_and_cheap(tmp_path, monkeypatch):
    """Cheap by construction, not by a clock: one 48 px drawing per file, none when it exists."""
    drawn: list[int] = []
    draw = demo.draw_demo_image

    def counted(class_name: str, size: int, rng: np.random.Generator) -> Image.Image:
        drawn.append(size)
        return draw(class_name, size, rng)

    monkeypatch.setattr(demo, "draw_demo_image", counted)
    root = make_demo_dataset(tmp_path / "demo")
    assert drawn == [48] * (40 * len(CLASSES))
    assert make_demo_dataset(tmp_path / "demo") == root and len(drawn) == 40 * len(CLASSES)
    assert len(list(root.rglob("*.png"))) == 40 * len(CLASSES)
    with Image.open(root / CLASSES[0] / "0000.png") as img:
        assert img.size == (48, 48)


def test_same_seed_gives_byte_identical_files(tmp_path):
    a = digests(make_demo_dataset(tmp_path / "a", per_class=6, size=24, seed=3))
    b = digests(make_demo_dataset(tmp_path / "b", per_class=6, size=24, seed=3))
    c = digests(make_demo_dataset(tmp_path / "c", per_class=6, size=24, seed=4))
    assert a == b
    assert not set(a.values()) & set(c.values())


def test_growing_per_class_keeps_earlier_images(tmp_path):
    small = digests(make_demo_dataset(tmp_path / "s", per_class=3, size=16))
    large = digests(make_demo_dataset(tmp_path / "l", per_class=5, size=16))
    assert small.items() <= large.items()


def test_no_duplicates_within_or_across_classes(tmp_path):
    root = make_demo_dataset(tmp_path / "demo", per_class=20, size=32)
    hashes = list(digests(root).values())
    assert len(set(hashes)) == len(hashes) == 20 * len(CLASSES)


def test_second_call_with_same_params_does_nothing(tmp_path):
    root = make_demo_dataset(tmp_path / "demo", per_class=4, size=16)
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*")}
    time.sleep(0.01)
    assert make_demo_dataset(tmp_path / "demo", per_class=4, size=16) == root
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*")} == before


def test_changed_params_or_missing_files_regenerate(tmp_path):
    root = make_demo_dataset(tmp_path / "demo", per_class=4, size=16)
    make_demo_dataset(root, per_class=2, size=20)
    assert len(list(root.rglob("*.png"))) == 2 * len(CLASSES)
    with Image.open(root / CLASSES[0] / "0001.png") as img:
        assert img.size == (20, 20)
    (root / CLASSES[1] / "0001.png").unlink()
    make_demo_dataset(root, per_class=2, size=20)
    assert (root / CLASSES[1] / "0001.png").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["demo"]  # no temporary folders left behind


def test_refuses_to_replace_a_folder_that_is_not_a_demo(tmp_path):
    mine = tmp_path / "photos"
    mine.mkdir()
    (mine / "holiday.jpg").write_bytes(b"precious")
    with pytest.raises(ConfigError, match="not a demo dataset"):
        make_demo_dataset(mine, per_class=2, size=16)
    assert [p.name for p in mine.iterdir()] == ["holiday.jpg"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photos"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="file"):
        make_demo_dataset(tmp_path / "file")


def test_empty_existing_folder_is_fine(tmp_path):
    (tmp_path / "demo").mkdir()
    make_demo_dataset(tmp_path / "demo", per_class=1, size=16)
    assert len(list((tmp_path / "demo").rglob("*.png"))) == len(CLASSES)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [({"per_class": 0}, "per_class"), ({"size": 4}, "size"), ({"seed": -1}, "seed")],
)
def test_bad_arguments_name_themselves(tmp_path, kwargs, name):
    with pytest.raises(ConfigError, match=name):
        make_demo_dataset(tmp_path / "demo", **kwargs)
    assert not (tmp_path / "demo").exists()


def test_failed_write_leaves_nothing_behind(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(demo, "draw_demo_image", broken)
    with pytest.raises(OSError, match="disk full"):
        make_demo_dataset(tmp_path / "demo", per_class=2, size=16)
    assert list(tmp_path.iterdir()) == []


def load(root: Path) -> tuple[np.ndarray, np.ndarray]:
    images, labels = [], []
    for index, cls in enumerate(CLASSES):
        for path in sorted((root / cls).glob("*.png")):
            images.append(np.asarray(Image.open(path), dtype=np.float32))
            labels.append(index)
    return np.stack(images), np.array(labels)


def test_colour_alone_does_not_tell_the_classes_apart(tmp_path):
    """Nearest class-mean colour, fitted on one seed, stays near chance on another."""
    train_x, train_y = load(make_demo_dataset(tmp_path / "a", per_class=40, size=24, seed=0))
    test_x, test_y = load(make_demo_dataset(tmp_path / "b", per_class=40, size=24, seed=1))
    means = np.stack([train_x[train_y == k].mean(axis=(0, 1, 2)) for k in range(len(CLASSES))])
    colours = test_x.mean(axis=(1, 2))
    predicted = np.argmin(((colours[:, None, :] - means[None]) ** 2).sum(-1), axis=1)
    assert (predicted == test_y).mean() < 1.0 / len(CLASSES) + 0.15


def test_shapes_differ_in_simple_structure(tmp_path):
    """A cue a conv layer sees at once: stripes have far more edge than a single shape."""
    x, y = load(make_demo_dataset(tmp_path / "demo", per_class=20, size=32))
    grey = x.mean(-1)
    edges = np.abs(np.diff(grey, axis=1)).mean(axis=(1, 2)) + np.abs(np.diff(grey, axis=2)).mean(
        axis=(1, 2)
    )
    stripes = edges[y == CLASSES.index("stripes")]
    others = edges[y != CLASSES.index("stripes")]
    assert np.median(stripes) > 1.5 * np.median(others)


def test_draw_rejects_unknown_class():
    with pytest.raises(ValueError, match="class_name"):
        demo.draw_demo_image("hexagons", 16, np.random.default_rng(0))
