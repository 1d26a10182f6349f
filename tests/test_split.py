"""Train/val splits: stratified, reproducible, duplicate groups whole, user splits kept."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest

from tests.imagegen import make_image_folder
from training.data.audit import FileRecord, audit_dataset
from training.data.scan import scan_dataset
from training.data.split import split_records
from training.errors import ConfigError


def records(counts: dict[str, int], split: str | None = None) -> list[FileRecord]:
    return [
        FileRecord(
            f"{label}/{i:03d}.png",
            Path(f"/d/{label}/{i:03d}.png"),
            label,
            split,
            f"{label}{i}",
            "0" * 16,
            16,
            16,
        )
        for label, n in counts.items()
        for i in range(n)
    ]


def rels(part: list[FileRecord]) -> list[str]:
    return [r.rel for r in part]


def test_stratified_per_class():
    parts = split_records(records({"a": 20, "b": 10, "c": 5}), 0.2, seed=0)
    assert set(parts) == {"train", "val"}
    assert Counter(r.label for r in parts["val"]) == {"a": 4, "b": 2, "c": 1}
    assert Counter(r.label for r in parts["train"]) == {"a": 16, "b": 8, "c": 4}
    assert set(rels(parts["train"])).isdisjoint(rels(parts["val"]))


def test_deterministic_for_a_seed_and_different_across_seeds():
    data = records({"a": 30, "b": 30})
    first = split_records(data, 0.3, seed=7)
    again = split_records(list(reversed(data)), 0.3, seed=7)
    assert rels(first["val"]) == rels(again["val"])
    others = {tuple(rels(split_records(data, 0.3, seed=s)["val"])) for s in range(5)}
    assert len(others) > 1


def test_every_class_with_two_images_gets_a_val_image():
    parts = split_records(records({"a": 2, "b": 3, "big": 100, "single": 1}), 0.05, seed=1)
    val = Counter(r.label for r in parts["val"])
    assert val["a"] == 1 and val["b"] == 1 and val["big"] == 5
    assert val["single"] == 0  # one image: it has to be trained on
    assert Counter(r.label for r in parts["train"])["a"] == 1


def test_zero_val_split_puts_everything_in_train():
    data = records({"a": 5, "b": 5})
    parts = split_records(data, 0, seed=0)
    assert len(parts["train"]) == 10 and parts["val"] == []


@pytest.mark.parametrize("bad", [-0.1, 0.95, 1, "0.2", None, True])
def test_val_split_out_of_range_is_a_config_error(bad):
    with pytest.raises(ConfigError, match="val_split"):
        split_records(records({"a": 5}), bad, seed=0)


def test_duplicate_groups_stay_on_one_side():
    data = records({"a": 30, "b": 30})
    groups = [
        ["a/000.png", "a/001.png", "a/002.png"],
        ["a/010.png", "a/011.png"],
        ["b/005.png", "b/006.png", "b/007.png", "b/008.png"],
        ["a/020.png", "b/020.png"],  # same image in two classes
        ["a/001.png", "a/015.png"],  # chains into the first group
        ["missing.png", "a/025.png"],  # unknown rels are ignored
    ]
    for seed in range(20):
        parts = split_records(data, 0.3, seed=seed, groups=groups)
        side = {r.rel: name for name, part in parts.items() for r in part}
        for group in groups:
            assert len({side[rel] for rel in group if rel in side}) == 1, (seed, group)
        assert len(side) == 60


def test_a_class_made_of_one_big_group_still_splits_when_it_can():
    data = records({"a": 4, "b": 10})
    groups = [["a/000.png", "a/001.png", "a/002.png"]]
    parts = split_records(data, 0.2, seed=0, groups=groups)
    val_a = [r.rel for r in parts["val"] if r.label == "a"]
    assert val_a == ["a/003.png"]


def test_user_made_splits_are_kept():
    data = records({"a": 6, "b": 6}, "train") + records({"a": 1}, "val") + records({"b": 2}, "test")
    for r in data:
        r.rel = f"{r.split}/{r.rel}"
    parts = split_records(data, 0.5, seed=0)
    assert set(parts) == {"train", "val", "test"}
    assert len(parts["train"]) == 12 and len(parts["val"]) == 1 and len(parts["test"]) == 2


def test_train_and_test_without_val_split_train_only():
    data = records({"a": 10, "b": 10}, "train") + records({"a": 2}, "test")
    for r in data:
        r.rel = f"{r.split}/{r.rel}"
    parts = split_records(data, 0.2, seed=0)
    assert Counter(r.label for r in parts["val"]) == {"a": 2, "b": 2}
    assert all(r.split == "train" for r in parts["val"])
    assert len(parts["test"]) == 2


def test_audit_groups_from_real_files_stay_together(tmp_path):
    root = make_image_folder(tmp_path / "data", {"cat": 10, "dog": 10})
    for i in range(3):
        shutil.copy(root / "cat" / "img_0001.png", root / "cat" / f"copy_{i}.png")
    report = audit_dataset(scan_dataset(root), workers=2)
    groups = [*report.exact_duplicates, *report.near_duplicates]
    assert groups
    for seed in range(10):
        parts = split_records(report.readable(), 0.25, seed=seed, groups=groups)
        side = {r.rel: name for name, part in parts.items() for r in part}
        assert len({side[rel] for rel in groups[0]}) == 1
        assert {"cat", "dog"} <= {r.label for r in parts["val"]}
