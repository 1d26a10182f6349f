"""Auditing real dataset folders: broken files, duplicates, leakage, balance and the verdict."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.imagegen import make_image_folder, make_shapes_folder
from tests.imagegen import photo_image as photo
from training.data import similarity
from training.data.audit import Leak, audit_dataset, raise_if_untrainable
from training.data.audit_text import format_audit
from training.data.scan import scan_dataset
from training.data.similarity import (
    NEAR_MAX_PIXEL_DIFF,
    TooManyPairsError,
    _member_pairs,
    _verified,
    near_pairs,
    pixel_diff,
)
from training.data.split import split_records
from training.errors import UnusableDatasetError


def audit(root: Path, **kwargs):
    return audit_dataset(scan_dataset(root), workers=2, **kwargs)


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
    exact, near = report.leakage
    assert exact == Leak("train/cat/0.png", "train", "val/cat/copied.png", "val", "exact", 0, 0.0)
    assert near[:5] == ("train/dog/1.png", "train", "val/dog/edited.jpg", "val", "near")
    assert 0 <= near.hash_distance <= 4 and 0 < near.pixel_diff <= NEAR_MAX_PIXEL_DIFF
    assert ["train/dog/1.png", "val/dog/edited.jpg"] in report.near_duplicates
    assert report.counts == {"train": {"cat": 8, "dog": 8}, "val": {"cat": 5, "dog": 5}}
    assert any("leakage" in w and "1 exact, 1 near" in w for w in report.verdict.warnings)
    text = format_audit(report)
    assert "val/dog/edited.jpg" in text and f"hash distance {near.hash_distance}/64" in text
    assert json.loads(json.dumps(report.to_dict()))["leakage"][0][4:] == ["exact", 0, 0.0]


def test_look_alike_images_are_not_duplicates_or_leakage(tmp_path):
    """Shapes drawn separately share a layout and hash alike; their thumbnails disagree."""
    root = make_shapes_folder(tmp_path / "shapes", {"train": 30, "val": 10})
    report = audit(root)
    records = report.readable()
    hashes = np.array([int(r.phash, 16) for r in records], dtype=np.uint64)
    candidates = near_pairs(hashes, 4).tolist()
    assert any(records[i].split != records[j].split for i, j in candidates)  # the old false alarm
    assert report.leakage == [] and report.near_duplicates == [] and report.exact_duplicates == []
    assert report.verdict.warnings == []


def test_near_copies_are_confirmed_by_their_thumbnails(tmp_path):
    """Re-encoded, resized or brightened copies of a photo are near duplicates, with evidence."""
    root = tmp_path / "data"
    for split, seeds in {"train": range(0, 6), "val": range(6, 9)}.items():
        for label, offset in (("cat", 0), ("dog", 100)):
            (root / split / label).mkdir(parents=True)
            for seed in seeds:
                photo(seed + offset).save(root / split / label / f"{seed}.png")
    original = photo(0)
    original.resize((48, 48), Image.Resampling.LANCZOS).save(root / "val/cat/half.jpg", quality=60)
    original.resize((192, 192), Image.Resampling.BICUBIC).save(root / "val/cat/double.png")
    darker = np.asarray(photo(101), dtype=np.float32) * 0.95
    Image.fromarray(darker.astype(np.uint8)).save(root / "val/dog/darker.jpg", quality=90)
    report = audit(root)
    leaks = {leak.copy: leak for leak in report.leakage}
    assert set(leaks) == {"val/cat/half.jpg", "val/cat/double.png", "val/dog/darker.jpg"}
    for leak in leaks.values():
        assert leak.kind == "near" and leak.hash_distance <= 4
        assert 0 < leak.pixel_diff <= NEAR_MAX_PIXEL_DIFF
    assert leaks["val/dog/darker.jpg"].original == "train/dog/1.png"
    assert sorted(report.near_duplicates) == [
        ["train/cat/0.png", "val/cat/double.png", "val/cat/half.jpg"],
        ["train/dog/1.png", "val/dog/darker.jpg"],
    ]


def test_a_stricter_pixel_threshold_turns_near_copies_into_distinct_images(tmp_path):
    root = tmp_path / "data"
    for split, seeds in {"train": range(0, 4), "val": range(4, 6)}.items():
        for label, offset in (("cat", 0), ("dog", 100)):
            (root / split / label).mkdir(parents=True)
            for seed in seeds:
                photo(seed + offset).save(root / split / label / f"{seed}.png")
    photo(0).save(root / "val" / "cat" / "copy.jpg", quality=50)
    assert [leak.kind for leak in audit(root).leakage] == ["near"]
    strict = audit(root, near_max_pixel_diff=0.1)
    assert strict.leakage == [] and strict.near_duplicates == []


def test_pixel_identical_files_are_exact_duplicates(tmp_path):
    """A byte copy and a PNG saved again with another compression level have the same pixels."""
    root = make_image_folder(
        tmp_path / "data", splits={"train": {"cat": 4, "dog": 4}, "val": {"cat": 2, "dog": 2}}
    )
    source = root / "train" / "cat" / "img_0001.png"
    shutil.copy(source, root / "val" / "cat" / "byte_copy.png")
    Image.open(source).save(root / "val" / "cat" / "resaved.png", compress_level=1)
    assert (root / "val/cat/resaved.png").read_bytes() != source.read_bytes()
    report = audit(root)
    group = ["train/cat/img_0001.png", "val/cat/byte_copy.png", "val/cat/resaved.png"]
    assert report.exact_duplicates == [group]
    assert report.near_duplicates == []
    assert [leak.copy for leak in report.leakage] == group[1:]
    assert {leak[4:] for leak in report.leakage} == {("exact", 0, 0.0)}
    by_rel = {r.rel: r for r in report.readable()}
    assert by_rel[group[0]].sha256 != by_rel[group[2]].sha256
    assert by_rel[group[0]].pixels == by_rel[group[2]].pixels


def test_imbalance_and_small_images_are_warnings(tmp_path):
    report = audit(make_image_folder(tmp_path / "data", {"cat": 8, "dog": 2}, size=16))
    assert report.imbalance_ratio == 4.0
    warnings = " ".join(report.verdict.warnings)
    assert "imbalanced" in warnings and "smaller than 32 px" in warnings


def test_class_only_in_val_cannot_train(tmp_path):
    root = make_image_folder(
        tmp_path / "data", splits={"train": {"cat": 2, "dog": 2}, "val": {"cat": 1, "bird": 2}}
    )
    report = audit(root)
    assert not report.verdict.trainable
    assert any("'bird'" in r and "none in train" in r for r in report.verdict.reasons)


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


def test_near_pairs_takes_10k_images_in_a_few_bounded_vector_steps(monkeypatch):
    """Fast by construction, not by a clock: a few dozen chunked array operations of at most
    4M comparisons each (bounded memory, no Python loop over pairs), each pair compared once."""
    n = 10_000
    hashes = np.random.default_rng(1).integers(0, 2**63, n, dtype=np.uint64)
    hashes[5000] = hashes[17] ^ np.uint64(0b101)  # the one pair within 4 bits
    compared: list[int] = []
    bitwise_count = np.bitwise_count

    def counted(x, *args, **kwargs):
        compared.append(x.size)
        return bitwise_count(x, *args, **kwargs)

    monkeypatch.setattr(np, "bitwise_count", counted)
    assert near_pairs(hashes, 4).tolist() == [[17, 5000]]
    assert len(compared) <= 32 and max(compared) <= 4_000_000
    assert sum(compared) <= 0.55 * n * n  # the upper triangle (and a chunk's diagonal) only


def test_candidate_pairs_expand_hash_nodes_to_their_images():
    node = np.random.default_rng(2).integers(0, 40, 200)  # 200 images, 40 distinct hashes
    linked = np.array([[i, i + 1] for i in range(0, 39, 3)])  # some hashes are within reach
    found = {tuple(p) for p in _member_pairs(node, linked, 10**6).tolist()}
    near = {(int(a), int(b)) for a, b in linked}
    expected = {
        (i, j)
        for i in range(200)
        for j in range(i + 1, 200)
        if node[i] == node[j] or (min(node[i], node[j]), max(node[i], node[j])) in near
    }
    assert found == expected
    with pytest.raises(TooManyPairsError):
        _member_pairs(np.zeros(100, dtype=np.int64), np.zeros((0, 2), dtype=np.int64), 50)


def test_pixel_diff_ignores_a_uniform_shift_but_not_a_moved_shape():
    image = np.asarray(photo(3, size=32))
    brighter = np.clip(image.astype(np.int16) + 9, 0, 255).astype(np.uint8)
    moved = np.roll(image, 4, axis=1)
    diffs = pixel_diff(np.stack([image, image]), np.stack([brighter, moved]))
    assert diffs[0] < 0.5 < NEAR_MAX_PIXEL_DIFF < diffs[1]


def test_thumbnails_are_compared_in_vectorised_chunks(monkeypatch):
    """Candidate pairs are verified in chunks of 256, each candidate's thumbnail centred once:
    100k pairs in about 400 array operations, not 100k (fast by construction, not by a clock)."""
    rng = np.random.default_rng(3)
    thumbs = list(rng.integers(0, 255, (2000, 32, 32, 3), dtype=np.uint8))
    thumbs[1999] = thumbs[1998].copy()  # the one pair that agrees: noise agrees with nothing
    pairs = rng.integers(0, 2000, (100_000, 2))
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    pairs = np.concatenate([pairs, [[1998, 1999]]])
    chunks: list[int] = []
    centred: list[int] = []
    centred_diff, centre = similarity._centred_diff, similarity._centred

    def counted_diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        chunks.append(len(a))
        return centred_diff(a, b)

    def counted_centre(batch: np.ndarray) -> np.ndarray:
        centred.append(len(batch))
        return centre(batch)

    monkeypatch.setattr(similarity, "_centred_diff", counted_diff)
    monkeypatch.setattr(similarity, "_centred", counted_centre)
    found = _verified(thumbs, pairs, NEAR_MAX_PIXEL_DIFF)
    assert {tuple(sorted(pair)) for pair in found.tolist()} == {(1998, 1999)}
    assert sum(chunks) == len(pairs) and max(chunks) == 256
    assert len(chunks) == -(-len(pairs) // 256)
    assert centred == [len(np.unique(pairs))]


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
    assert report.near_duplicates == [] and report.exact_duplicates == []
    assert any("look alike" in w for w in report.verdict.warnings)
    groups = [*report.exact_duplicates, *report.near_duplicates]
    parts = split_records(report.readable(), 0.2, seed=0, groups=groups)
    assert sum(r.label == "cat" for r in parts["val"]) == 6
