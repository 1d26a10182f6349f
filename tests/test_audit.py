"""Auditing real dataset folders: broken files, duplicates, leakage, balance and the verdict."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.imagegen import make_image_folder
from training.data.audit import (
    TooManyPairsError,
    audit_dataset,
    format_audit,
    near_pairs,
    raise_if_untrainable,
)
from training.data.scan import scan_dataset
from training.data.split import split_records
from training.errors import UnusableDatasetError


def audit(root: Path, **kwargs):
    return audit_dataset(scan_dataset(root), workers=2, **kwargs)


def photo(seed: int, size: int = 96) -> Image.Image:
    """A smooth, photo-like image: perceptual hashes are stable for it, unlike pure noise."""
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray(rng.integers(0, 255, (6, 6, 3), dtype=np.uint8))
    return coarse.resize((size, size), Image.Resampling.BICUBIC)


def test_healthy_dataset_is_trainable(image_folder):
    report = audit(image_folder)
    assert report.verdict.trainable and report.verdict.reasons == []
    assert report.counts == {"all": {"cat": 6, "dog": 6}}
    assert report.size_stats["width"] == {"min": 16, "median": 16.0, "max": 16}
    assert report.unreadable == [] and report.exact_duplicates == [] and report.leakage == []
    assert report.imbalance_ratio == 1.0
    assert len(report.readable()) == 12
    record = report.readable()[0]
    assert len(record.sha256) == 64 and len(record.phash) == 16
    json.dumps(report.to_dict())
    text = format_audit(report)
    assert "cat" in text and "Verdict: TRAINABLE" in text
    assert text.index("Verdict") > text.index("Problems") > text.index("Images per class")
    raise_if_untrainable(report)


def test_single_class_is_not_trainable(tmp_path):
    report = audit(make_image_folder(tmp_path / "data", {"cat": 5}))
    assert not report.verdict.trainable
    assert any("only one class ('cat')" in r for r in report.verdict.reasons)
    assert "NOT TRAINABLE" in format_audit(report)
    with pytest.raises(UnusableDatasetError, match="only one class") as info:
        raise_if_untrainable(report)
    assert info.value.exit_code == 2


def test_class_with_one_image_is_named(tmp_path):
    report = audit(make_image_folder(tmp_path / "data", {"cat": 4, "dog": 1}))
    assert not report.verdict.trainable
    assert any("class 'dog' has only 1 readable image" in r for r in report.verdict.reasons)


def test_no_readable_images_is_not_trainable(tmp_path):
    root = tmp_path / "data"
    for name in ("cat", "dog"):
        (root / name).mkdir(parents=True)
        (root / name / "a.jpg").write_text("not a picture")
    report = audit(root)
    assert not report.verdict.trainable
    assert any("no readable images" in r for r in report.verdict.reasons)
    assert len(report.unreadable) == 2


def test_unreadable_files_are_listed_by_name_and_left_out(tmp_path):
    root = make_image_folder(tmp_path / "data", {"cat": 3, "dog": 3})
    (root / "cat" / "fake.jpg").write_text("this is text")
    noise = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(root / "dog" / "whole.jpg", quality=95)
    data = (root / "dog" / "whole.jpg").read_bytes()
    (root / "dog" / "cut.jpg").write_bytes(data[: len(data) // 2])
    report = audit(root)
    reasons = dict(report.unreadable)
    assert "not an image Pillow can decode" in reasons["cat/fake.jpg"]
    assert "truncated" in reasons["dog/cut.jpg"]
    assert report.verdict.trainable
    assert any("2 unreadable" in w for w in report.verdict.warnings)
    assert {r.rel for r in report.readable()}.isdisjoint({"cat/fake.jpg", "dog/cut.jpg"})
    assert report.counts["all"] == {"cat": 3, "dog": 4}
    text = format_audit(report)
    assert "cat/fake.jpg" in text and "dog/cut.jpg" in text


def test_empty_class_folder_is_a_warning(tmp_path):
    root = make_image_folder(tmp_path / "data", {"cat": 2, "dog": 2})
    (root / "bird").mkdir()
    report = audit(root)
    assert report.verdict.trainable
    assert report.empty_classes == ["bird"]
    assert any("'bird'" in w for w in report.verdict.warnings)


def test_exact_duplicates_and_label_conflicts(tmp_path):
    root = make_image_folder(tmp_path / "data", {"cat": 3, "dog": 3})
    shutil.copy(root / "cat" / "img_0001.png", root / "cat" / "copy.png")
    shutil.copy(root / "cat" / "img_0002.png", root / "dog" / "also_a_dog.png")
    report = audit(root)
    assert ["cat/copy.png", "cat/img_0001.png"] in report.exact_duplicates
    assert report.cross_class_duplicates == [["cat/img_0002.png", "dog/also_a_dog.png"]]
    assert report.near_duplicates == []  # exact copies are not repeated as near duplicates
    assert any("label conflict" in w for w in report.verdict.warnings)
    assert report.leakage == []  # no splits in the folder yet: the split keeps groups together


def test_leakage_across_splits_exact_and_near(tmp_path):
    root = tmp_path / "data"
    for split, seeds in {"train": range(0, 8), "val": range(8, 12)}.items():
        for label, offset in (("cat", 0), ("dog", 100)):
            folder = root / split / label
            folder.mkdir(parents=True)
            for seed in seeds:
                photo(seed + offset).save(folder / f"{seed}.png")
    shutil.copy(root / "train" / "cat" / "0.png", root / "val" / "cat" / "copied.png")
    brighter = np.clip(np.asarray(photo(101), dtype=np.int16) + 12, 0, 255).astype(np.uint8)
    Image.fromarray(brighter).save(root / "val" / "dog" / "edited.jpg", quality=85)
    report = audit(root)
    assert report.layout == "splits"
    leaks = {(a, sa, b, sb, kind) for a, sa, b, sb, kind in report.leakage}
    assert ("train/cat/0.png", "train", "val/cat/copied.png", "val", "exact") in leaks
    assert ("train/dog/1.png", "train", "val/dog/edited.jpg", "val", "near") in leaks
    assert len(leaks) == 2
    assert ["train/dog/1.png", "val/dog/edited.jpg"] in report.near_duplicates
    assert report.counts == {"train": {"cat": 8, "dog": 8}, "val": {"cat": 5, "dog": 5}}
    assert any("leakage" in w for w in report.verdict.warnings)
    assert "val/dog/edited.jpg" in format_audit(report)


def test_imbalance_and_small_images_are_warnings(tmp_path):
    report = audit(make_image_folder(tmp_path / "data", {"cat": 8, "dog": 2}, size=16))
    assert report.imbalance_ratio == 4.0
    warnings = " ".join(report.verdict.warnings)
    assert "imbalanced" in warnings and "smaller than 32 px" in warnings


def test_class_only_in_val_is_a_warning(tmp_path):
    root = make_image_folder(
        tmp_path / "data", splits={"train": {"cat": 2, "dog": 2}, "val": {"cat": 1, "bird": 2}}
    )
    report = audit(root)
    assert any("'bird'" in w and "none in train" in w for w in report.verdict.warnings)


def test_near_pairs_matches_brute_force():
    rng = np.random.default_rng(0)
    hashes = rng.integers(0, 2**63, 300, dtype=np.uint64)
    hashes[10] = hashes[3] ^ np.uint64(0b1011)  # 3 bits apart
    hashes[200] = hashes[3]
    found = {tuple(p) for p in near_pairs(hashes, 4).tolist()}
    expected = {
        (i, j)
        for i in range(300)
        for j in range(i + 1, 300)
        if bin(int(hashes[i]) ^ int(hashes[j])).count("1") <= 4
    }
    assert found == expected and {(3, 10), (3, 200), (10, 200)} <= found


def test_near_pairs_is_fast_for_10k_images():
    hashes = np.random.default_rng(1).integers(0, 2**63, 10_000, dtype=np.uint64)
    start = time.perf_counter()
    near_pairs(hashes, 4)
    assert time.perf_counter() - start < 5.0


def test_near_pairs_stops_at_max_pairs():
    with pytest.raises(TooManyPairsError):
        near_pairs(np.zeros(100, dtype=np.uint64), 4, max_pairs=50)


def test_a_folder_of_look_alikes_is_not_one_duplicate_group(tmp_path):
    """Frames from a fixed camera all hash alike: grouping them would leave nothing for val."""
    root = tmp_path / "data"
    (root / "cat").mkdir(parents=True)
    (root / "dog").mkdir()
    base = np.asarray(photo(5), dtype=np.int16)
    for i in range(30):
        frame = np.clip(base + i, 0, 255).astype(np.uint8)
        Image.fromarray(frame).save(root / "cat" / f"frame_{i:02d}.png")
    for i in range(10):
        photo(200 + i).save(root / "dog" / f"{i}.png")
    report = audit(root)
    assert not any(len(group) > 20 for group in report.near_duplicates)
    assert any("look alike" in w for w in report.verdict.warnings)
    groups = [*report.exact_duplicates, *report.near_duplicates]
    parts = split_records(report.readable(), 0.2, seed=0, groups=groups)
    assert sum(r.label == "cat" for r in parts["val"]) == 6
