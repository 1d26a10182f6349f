"""Audit findings on real generated image folders: leakage, class balance and class size."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from PIL import Image

from tests.imagegen import make_image_folder, make_shapes_folder, photo_image
from training.babysit.audit_findings import LEAK_PAIRS_SHOWN, audit_findings
from training.babysit.findings import worst_status
from training.data.audit import audit_dataset
from training.data.scan import scan_dataset


def findings(root: Path) -> dict:
    found = audit_findings(audit_dataset(scan_dataset(root), workers=2))
    for finding in found:
        json.dumps(finding.to_dict(), allow_nan=False)
    return {f.check: f for f in found}


def copy_into_val(root: Path, name: str, how_many: int) -> list[str]:
    copied = []
    for source in sorted((root / "train" / name).iterdir())[:how_many]:
        shutil.copy(source, root / "val" / name / f"copy_{source.name}")
        copied.append(f"val/{name}/copy_{source.name}")
    return copied


def test_a_clean_split_dataset_is_all_ok(tmp_path):
    root = make_image_folder(
        tmp_path / "clean",
        splits={"train": {"cat": 50, "dog": 55}, "val": {"cat": 10, "dog": 10}},
    )
    checks = findings(root)
    assert list(checks) == ["leakage", "class_balance", "too_few_images"]
    assert worst_status(checks.values()) == "ok", {c: f.advice for c, f in checks.items()}
    assert all(f.advice == "Nothing to do." and f.action is None for f in checks.values())
    assert checks["too_few_images"].measured == 50
    assert checks["too_few_images"].evidence["train_counts"] == {"cat": 50, "dog": 55}
    assert checks["class_balance"].evidence["counts"] == {"cat": 60, "dog": 65}


def test_a_clean_unsplit_dataset_counts_all_images_before_the_split(tmp_path):
    checks = findings(make_image_folder(tmp_path / "clean", {"cat": 50, "dog": 50}))
    assert worst_status(checks.values()) == "ok"
    assert checks["too_few_images"].evidence["counted"] == (
        "all its images; --val-split will hold some of them out"
    )


def test_a_train_image_copied_into_val_is_leakage(tmp_path):
    root = make_image_folder(
        tmp_path / "leaky",
        splits={"train": {"cat": 50, "dog": 50}, "val": {"cat": 10, "dog": 10}},
    )
    copied = copy_into_val(root, "cat", 1)
    leakage = findings(root)["leakage"]
    assert leakage.status == "fail" and leakage.measured == 1
    assert leakage.evidence["exact"] == 1
    assert leakage.evidence["pairs"] == [
        {
            "original": "train/cat/img_0001.png",
            "original_split": "train",
            "copy": copied[0],
            "copy_split": "val",
            "kind": "exact",
            "hash_distance": 0,
            "pixel_diff": 0.0,
        }
    ]
    assert "train command" in leakage.advice and "one side" in leakage.advice


def test_look_alike_images_across_splits_are_not_leakage(tmp_path):
    """The reported false alarm: separately drawn shapes whose perceptual hashes sit close."""
    root = make_shapes_folder(tmp_path / "shapes", {"train": 30, "val": 10})
    leakage = findings(root)["leakage"]
    assert leakage.status == "ok" and leakage.measured == 0, leakage.advice
    assert leakage.evidence["pairs"] == [] and leakage.evidence["duplicate_groups"] == 0


def test_a_resized_jpeg_copy_in_val_is_near_leakage_and_warns(tmp_path):
    root = make_shapes_folder(tmp_path / "shapes", {"train": 30, "val": 10})
    photo_image(7).save(root / "train" / "circle" / "photo.png")
    photo_image(7).resize((64, 64), Image.Resampling.LANCZOS).save(
        root / "val" / "circle" / "photo_small.jpg", quality=75
    )
    leakage = findings(root)["leakage"]
    assert leakage.status == "warn" and leakage.measured == 1
    assert (leakage.evidence["exact"], leakage.evidence["near"]) == (0, 1)
    (pair,) = leakage.evidence["pairs"]
    assert pair["original"] == "train/circle/photo.png"
    assert pair["copy"] == "val/circle/photo_small.jpg" and pair["kind"] == "near"
    assert pair["hash_distance"] <= 4 and 0 < pair["pixel_diff"] <= 10
    assert "nearly copy" in leakage.advice and "'near'" in leakage.advice
    assert "exactly" not in leakage.advice


def test_byte_and_pixel_identical_copies_fail_as_exact(tmp_path):
    root = make_shapes_folder(tmp_path / "shapes", {"train": 30, "val": 10})
    photo_image(7).save(root / "train" / "square" / "photo.png")
    photo_image(7).resize((64, 64)).save(root / "val" / "square" / "near.jpg", quality=90)
    source = sorted((root / "train" / "circle").iterdir())[0]
    shutil.copy(source, root / "val" / "circle" / "byte_copy.png")
    Image.open(source).save(root / "val" / "circle" / "resaved.png", compress_level=0)
    leakage = findings(root)["leakage"]
    assert leakage.status == "fail" and leakage.measured == 3
    assert (leakage.evidence["exact"], leakage.evidence["near"]) == (2, 1)
    kinds = [
        (p["copy"], p["kind"], p["hash_distance"], p["pixel_diff"])
        for p in leakage.evidence["pairs"]
    ]
    assert kinds[:2] == [
        ("val/circle/byte_copy.png", "exact", 0, 0.0),
        ("val/circle/resaved.png", "exact", 0, 0.0),
    ]
    assert kinds[2][:2] == ("val/square/near.jpg", "near")
    assert "exactly the same pixels" in leakage.advice and "nearly copy" in leakage.advice


def test_leaked_pairs_in_the_evidence_are_capped(tmp_path):
    root = make_image_folder(
        tmp_path / "leaky",
        splits={"train": {"cat": 30, "dog": 30}, "val": {"cat": 5, "dog": 5}},
    )
    copy_into_val(root, "cat", 25)
    leakage = findings(root)["leakage"]
    assert leakage.measured == 25 and leakage.evidence["leaked"] == 25
    assert len(leakage.evidence["pairs"]) == LEAK_PAIRS_SHOWN == leakage.evidence["shown"]


def test_duplicates_before_the_split_are_not_leakage(tmp_path):
    root = make_image_folder(tmp_path / "dups", {"cat": 50, "dog": 50})
    shutil.copy(root / "cat" / "img_0001.png", root / "cat" / "copy.png")
    leakage = findings(root)["leakage"]
    assert leakage.status == "ok" and leakage.evidence["duplicate_groups"] == 1
    assert "keeps each group on one side" in leakage.advice


def test_imbalanced_classes_warn_with_class_weights(tmp_path):
    checks = findings(make_image_folder(tmp_path / "lopsided", {"cat": 60, "dog": 15}))
    balance = checks["class_balance"]
    assert balance.status == "warn" and balance.measured == 4.0
    assert balance.evidence["counts"] == {"cat": 60, "dog": 15}
    assert (balance.evidence["largest"], balance.evidence["smallest"]) == ("cat", "dog")
    assert "--class-weights auto" in balance.advice and "'dog'" in balance.advice


def test_a_class_twenty_times_smaller_fails(tmp_path):
    checks = findings(make_image_folder(tmp_path / "lopsided", {"cat": 63, "dog": 3}))
    assert checks["class_balance"].status == "fail"
    assert checks["too_few_images"].status == "fail"
    assert checks["too_few_images"].evidence["smallest"] == "dog"


def test_too_few_images_per_class(tmp_path):
    few = findings(make_image_folder(tmp_path / "few", {"cat": 20, "dog": 25}))["too_few_images"]
    assert few.status == "warn" and few.measured == 20
    assert "--unfreeze" in few.advice
    tiny = findings(make_image_folder(tmp_path / "tiny", {"cat": 6, "dog": 6}))["too_few_images"]
    assert tiny.status == "fail" and tiny.measured == 6
    assert "'cat'" in tiny.advice and "--val-split" in tiny.advice


def test_only_training_images_count_when_val_is_given(tmp_path):
    root = make_image_folder(
        tmp_path / "splits",
        splits={"train": {"cat": 60, "dog": 8}, "val": {"cat": 10, "dog": 40}},
    )
    few = findings(root)["too_few_images"]
    assert few.status == "fail" and few.measured == 8
    assert few.evidence["train_counts"] == {"cat": 60, "dog": 8}
    assert few.evidence["counted"] == "its train split"  # val/ is given: nothing held out


def test_an_empty_class_folder_is_named(tmp_path):
    root = make_image_folder(tmp_path / "empty", {"cat": 50, "dog": 50})
    (root / "bird").mkdir()
    few = findings(root)["too_few_images"]
    assert few.status == "warn" and "'bird'" in few.advice
    assert few.evidence["empty_classes"] == ["bird"]
