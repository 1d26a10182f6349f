"""Decode once: the cache is reused while files are unchanged and rebuilt when they change."""

from __future__ import annotations

import numpy as np
from PIL import Image

from tests.imagegen import make_image_folder
from training.data import cache as cache_module
from training.data.audit import audit_dataset
from training.data.batches import ImageBatches
from training.data.cache import load_or_build_cache
from training.data.images import load_rgb
from training.data.scan import scan_dataset


def build(folder, root, size=16):
    report = audit_dataset(scan_dataset(folder))
    return load_or_build_cache(report.readable(), report.classes, size, root, progress=False)


def test_cache_holds_the_same_pixels_as_load_rgb(tmp_path):
    folder = make_image_folder(tmp_path / "d", {"a": 3, "b": 2}, size=20)
    cache = build(folder, tmp_path / "cache", size=12)
    assert cache.images.shape == (5, 12, 12, 3) and cache.images.dtype == np.uint8
    for i, rel in enumerate(cache.rels):
        np.testing.assert_array_equal(cache.images[i], load_rgb(folder / rel, 12))
    assert [cache.class_names[j] for j in cache.labels] == [r.split("/")[0] for r in cache.rels]


def test_second_open_decodes_nothing(tmp_path, monkeypatch):
    folder = make_image_folder(tmp_path / "d", {"a": 3, "b": 3})
    first = build(folder, tmp_path / "cache")
    calls = []
    monkeypatch.setattr(cache_module, "load_rgb", lambda *a: calls.append(a))
    second = build(folder, tmp_path / "cache")
    assert calls == [] and second.key == first.key


def test_changed_file_gives_a_new_cache(tmp_path):
    folder = make_image_folder(tmp_path / "d", {"a": 3, "b": 3})
    first = build(folder, tmp_path / "cache")
    changed = folder / "a" / "img_0001.png"
    Image.new("RGB", (16, 16), (1, 2, 3)).save(changed)
    second = build(folder, tmp_path / "cache")
    assert second.key != first.key
    row = second.rels.index("a/img_0001.png")
    assert tuple(second.images[row, 0, 0]) == (1, 2, 3)
    assert build(folder, tmp_path / "cache", size=8).key != second.key


def test_batches_cover_rows_and_reshuffle_each_epoch(tmp_path):
    images = np.arange(10, dtype=np.uint8).reshape(10, 1, 1, 1).repeat(3, axis=3)
    labels = np.arange(10) % 2
    rows = np.array([1, 3, 5, 7, 9])
    batches = ImageBatches(images, labels, rows, batch_size=2, shuffle=True, seed=0)
    assert len(batches) == 3

    def epoch():
        return [int(v) for i in range(len(batches)) for v in batches[i][0][:, 0, 0, 0]]

    first = epoch()
    assert sorted(first) == [1, 3, 5, 7, 9]
    batches.on_epoch_end()
    orders = {tuple(first)}
    for _ in range(5):
        orders.add(tuple(epoch()))
        batches.on_epoch_end()
    assert len(orders) > 1
    fixed = ImageBatches(images, labels, np.array([9, 2, 4]), batch_size=2)
    assert [int(v) for v in fixed[0][0][:, 0, 0, 0]] == [9, 2]
