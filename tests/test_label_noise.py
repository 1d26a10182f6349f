"""``label_noise``: out-of-fold predictions on features, then the confident-learning rule.

Most tests use synthetic features (Gaussian clusters, one per class: what pretrained backbone
features of distinct classes look like to a linear head); one uses the pixels of real generated
image files, so the suspects name files on disk.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from tests.imagegen import make_image_folder
from training.babysit import label_noise as ln
from training.babysit.label_noise import (
    confident_joint,
    label_issues,
    label_noise_check,
    per_class_thresholds,
)
from training.babysit.thresholds import LABEL_NOISE_SHARE

CLASSES = ["cat", "dog", "fox", "owl"]


def clusters(rows: int, rng: np.random.Generator, centers: np.ndarray, spread: float = 0.6):
    """Features of ``rows`` examples, classes in turn: class centre · spread + unit noise.

    With 4 classes in 64 dimensions and spread 0.6 a linear head scores about 99% out of fold.
    """
    labels = np.arange(rows) % len(centers)
    features = centers[labels] * spread + rng.normal(0, 1, (rows, centers.shape[1]))
    return features.astype(np.float32), labels


def dataset(seed: int = 0, train: int = 600, val: int = 200, dims: int = 64):
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 1, (len(CLASSES), dims))
    x, y = clusters(train, rng, centers)
    vx, vy = clusters(val, rng, centers)
    return x, y, vx, vy, rng


def flip(labels: np.ndarray, share: float, rng: np.random.Generator):
    """``share`` of the labels moved to another class (uniformly); the moved indices."""
    moved = rng.choice(len(labels), int(share * len(labels)), replace=False)
    noisy = labels.copy()
    noisy[moved] = (labels[moved] + rng.integers(1, len(CLASSES), len(moved))) % len(CLASSES)
    return noisy, moved


def files(n: int) -> list[str]:
    return [f"train/img_{i:04d}.png" for i in range(n)]


# -- the rule ----------------------------------------------------------------------------------


def test_confident_learning_rule_by_hand():
    labels = np.array([0, 0, 0, 1, 1, 1])
    probabilities = np.array(
        [[0.9, 0.1], [0.8, 0.2], [0.2, 0.8], [0.1, 0.9], [0.3, 0.7], [0.6, 0.4]]
    )
    # t_0 = mean(0.9, 0.8, 0.2) = 0.633; t_1 = mean(0.9, 0.7, 0.4) = 0.667.
    assert per_class_thresholds(labels, probabilities) == pytest.approx([0.6333, 0.6667], 1e-3)
    # Row 2 (labelled 0) is confidently 1; row 5 reaches no threshold and is not counted.
    assert confident_joint(labels, probabilities).tolist() == [[2, 1], [0, 2]]
    assert label_issues(labels, probabilities).tolist() == [2]


def test_suspects_are_ranked_by_the_probability_of_their_given_label():
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    labelled_0 = [[0.9, 0.1], [0.9, 0.1], [0.3, 0.7], [0.1, 0.9]]
    labelled_1 = [[0.1, 0.9], [0.1, 0.9], [0.9, 0.1], [0.2, 0.8]]
    probabilities = np.array([*labelled_0, *labelled_1])
    # Rows 3 and 6 give their label 0.1 (a tie, kept in row order), row 2 gives it 0.3.
    assert label_issues(labels, probabilities).tolist() == [3, 6, 2]


# -- the verdicts ------------------------------------------------------------------------------


def test_clean_separable_labels_are_ok_with_few_suspects():
    x, y, vx, vy, _ = dataset()
    finding = label_noise_check(x, y, vx, vy, CLASSES, train_files=files(len(y)))
    evidence = finding.evidence
    assert finding.status == "ok", finding
    assert finding.check == "label_noise" and finding.action is None
    assert finding.advice.startswith("Nothing to do.")
    assert evidence["train_oof_accuracy"] > 0.95 and evidence["val_oof_accuracy"] > 0.9
    assert evidence["suspect_share_train"] < 0.02
    assert evidence["chance"] == pytest.approx(0.25)
    assert evidence["folds"] == {"train": 5, "val": 5}
    assert evidence["rows_used"] == {"train": 600, "val": 200}
    assert evidence["cause"] is None
    json.dumps(finding.to_dict())  # stored with the run as JSON


def test_flipped_training_labels_warn_and_the_suspects_are_the_flipped_rows():
    x, y, vx, vy, rng = dataset()
    noisy, moved = flip(y, 0.2, rng)
    finding = label_noise_check(x, noisy, vx, vy, CLASSES, train_files=files(len(y)))
    assert finding.status == "warn", finding
    assert finding.evidence["cause"] == "noisy_labels"
    count = finding.evidence["train_suspects"]
    assert f"{count} of 600 training labels" in finding.measured
    assert f"{count} of 600 training labels" in finding.advice and "Review" in finding.advice
    # Every suspect, not only the listed ones: precision and recall against the known flips.
    found = ln.out_of_fold(x, noisy, seed=0)
    suspects = set(found.rows[found.suspects].tolist())
    flipped = set(moved.tolist())
    precision = len(suspects & flipped) / len(suspects)
    recall = len(suspects & flipped) / len(flipped)
    print(f"20% flipped: {len(suspects)} suspects, precision {precision:.2f}, recall {recall:.2f}")
    assert precision >= 0.7 and recall >= 0.7
    # The listed suspects: capped, likeliest first, naming files and both classes.
    listed = finding.evidence["suspects"]
    assert 0 < len(listed) <= 50
    probabilities = [s["given_probability"] for s in listed]
    assert probabilities == sorted(probabilities)
    first = listed[0]
    assert first["file"] == f"train/img_{first['row']:04d}.png"
    assert first["given"] == CLASSES[noisy[first["row"]]]
    assert first["predicted"] in CLASSES and first["predicted"] != first["given"]
    assert first["confidence"] > first["given_probability"]
    assert sum(s["row"] in flipped for s in listed) >= 0.9 * len(listed)


def test_shuffled_training_labels_with_clean_validation_fail_blaming_the_labels():
    x, y, vx, vy, rng = dataset()
    finding = label_noise_check(x, rng.permutation(y), vx, vy, CLASSES)
    assert finding.status == "fail", finding
    assert finding.evidence["cause"] == "labels"
    assert "training labels do not match the images" in finding.advice
    assert "folders" in finding.advice
    assert finding.evidence["train_oof_accuracy"] < 0.35
    assert finding.evidence["val_oof_accuracy"] > 0.9
    assert finding.evidence["suspects"]


def test_features_without_class_information_warn_about_the_features_not_the_labels():
    _, y, _, vy, rng = dataset()
    x = rng.normal(size=(len(y), 64)).astype(np.float32)
    vx = rng.normal(size=(len(vy), 64)).astype(np.float32)
    finding = label_noise_check(x, y, vx, vy, CLASSES)
    assert finding.status == "warn", finding
    assert finding.evidence["cause"] == "features"
    assert "cannot be judged" in finding.advice
    assert "--weights PATH" in finding.advice and "--image-size" in finding.advice
    assert "wrong" not in finding.advice and "do not match" not in finding.advice


def test_imbalanced_noise_features_are_judged_by_balanced_accuracy():
    rng = np.random.default_rng(3)
    y = np.array([0] * 300 + [1] * 60)  # guessing "cat" scores 83%
    x = rng.normal(size=(len(y), 32)).astype(np.float32)
    finding = label_noise_check(x, y, None, None, CLASSES[:2])
    assert finding.status == "warn" and finding.evidence["cause"] == "features", finding
    assert finding.evidence["train_oof_balanced_accuracy"] < 0.6


def test_without_a_validation_split_it_still_judges_the_training_labels():
    x, y, _, _, rng = dataset()
    clean = label_noise_check(x, y, None, None, CLASSES)
    assert clean.status == "ok", clean
    assert clean.evidence["val_oof_accuracy"] is None
    assert clean.evidence["skipped"] == {"val": "no images"}
    noisy, _ = flip(y, 0.2, rng)
    empty = np.zeros((0, x.shape[1]), np.float32)
    finding = label_noise_check(x, noisy, empty, np.zeros(0, np.int64), CLASSES)
    assert finding.status == "warn" and finding.evidence["cause"] == "noisy_labels", finding
    assert finding.evidence["suspect_share_train"] >= LABEL_NOISE_SHARE
    assert "no validation split" in finding.advice


def split(balanced_accuracy: float, rows: int = 400, suspects: int = 0) -> ln.SplitResult:
    """A judged two-class split with these numbers (for the verdict alone)."""
    return ln.SplitResult(
        True,
        rows=np.arange(rows),
        class_ids=np.arange(2),
        balanced_accuracy=balanced_accuracy,
        suspects=np.arange(suspects),
    )


def test_verdict_between_chance_and_learned_names_both_causes():
    status, cause, _, advice = ln._verdict(split(0.52), split(0.68))
    assert (status, cause) == ("warn", "features_or_labels")
    assert "too weak" in advice and "training labels do not match" in advice
    assert ln._verdict(split(0.52), split(0.9))[:2] == ("fail", "labels")
    assert ln._verdict(split(0.52), split(0.55))[:2] == ("warn", "features")
    alone = ln._verdict(split(0.52), ln.SplitResult(False, "no images"))
    assert alone[:2] == ("warn", "features") and "no validation split" in alone[3]


def test_verdict_counts_suspects_against_the_validation_share():
    # 60 of 400 (15%) against 4% of validation: 11 points more, a warning.
    assert ln._verdict(split(0.9, suspects=60), split(0.9, 200, 8))[:2] == ("warn", "noisy_labels")
    # Against 8%: 7 points, what the features' own confusions explain.
    assert ln._verdict(split(0.9, suspects=60), split(0.9, 200, 16))[:2] == ("ok", None)
    # Under 10% of the training labels: ok, the count mentioned for curiosity.
    status, _, _, advice = ln._verdict(split(0.9, suspects=20), split(0.9, 200, 0))
    assert status == "ok" and "20 training labels (5.0%)" in advice


# -- small and odd inputs ----------------------------------------------------------------------


def test_tiny_splits_skip_the_k_fold_and_never_crash():
    rng = np.random.default_rng(0)
    one_each = label_noise_check(
        rng.normal(size=(4, 8)), np.arange(4), rng.normal(size=(4, 8)), np.arange(4), CLASSES
    )
    assert one_each.status == "ok"
    assert set(one_each.evidence["skipped"]) == {"train", "val"}
    assert "not judged" in one_each.measured
    single = label_noise_check(rng.normal(size=(6, 8)), np.zeros(6, int), None, None, CLASSES)
    assert single.evidence["skipped"]["train"] == "one class only"


def test_a_class_with_one_image_is_left_out_and_the_folds_shrink():
    rng = np.random.default_rng(0)
    centers = rng.normal(0, 1, (len(CLASSES), 16))
    y = np.array([0] * 10 + [1] * 10 + [3] * 9 + [2])  # one "fox": no fold could predict it
    x = centers[y] * 0.6 + rng.normal(0, 1, (len(y), 16))
    vy = np.array([0, 1] * 6)
    vx = centers[vy] * 0.6 + rng.normal(0, 1, (len(vy), 16))
    finding = label_noise_check(x, y, vx, vy, CLASSES)
    assert finding.evidence["skipped_classes"] == {"train": ["fox"]}
    assert finding.evidence["rows_used"] == {"train": 29, "val": 12}
    assert finding.evidence["folds"] == {"train": 5, "val": 5}
    small = label_noise_check(x[:8], np.array([0, 1] * 4), None, None, CLASSES)
    assert small.evidence["folds"]["train"] == 4


def test_rows_beyond_the_cap_are_sampled_with_the_seed(monkeypatch):
    monkeypatch.setattr(ln, "LABEL_NOISE_MAX_ROWS", 200)
    x, y, vx, vy, _ = dataset()
    names = files(len(y))
    first = label_noise_check(x, y, vx, vy, CLASSES, train_files=names, seed=1)
    again = label_noise_check(x, y, vx, vy, CLASSES, train_files=names, seed=1)
    assert first.evidence["rows_used"] == {"train": 200, "val": 200}
    assert first.evidence["rows"] == {"train": 600, "val": 200}
    assert first.evidence["train_oof_accuracy"] == again.evidence["train_oof_accuracy"]
    assert first.evidence["seconds"] < 5


def test_mismatched_files_are_refused():
    x, y, *_ = dataset(train=40, val=8)
    with pytest.raises(ValueError, match="training files"):
        label_noise_check(x, y, None, None, CLASSES, train_files=files(3))


# -- real image files --------------------------------------------------------------------------


def pixels(paths) -> np.ndarray:
    return np.stack([np.asarray(Image.open(p), np.float32).reshape(-1) / 255 for p in paths])


def test_misfiled_images_on_disk_are_named_among_the_suspects(tmp_path):
    """Pixels of generated 16 px images (their mean colour is the class) as the features; 8 of
    the 60 training images moved into another class's folder are the suspects (confident
    learning is conservative: most of them, and nothing else)."""
    names = ["red", "green", "blue"]
    root = make_image_folder(
        tmp_path / "data",
        splits={"train": dict.fromkeys(names, 20), "val": dict.fromkeys(names, 10)},
    )
    rng = np.random.default_rng(0)
    moved = []
    for path in rng.choice(sorted((root / "train").rglob("*.png")), 8, replace=False):
        other = names[(names.index(path.parent.name) + 1) % 3]
        target = root / "train" / other / path.name
        path.rename(target)
        moved.append(target.relative_to(root).as_posix())

    def split(name):
        paths = sorted((root / name).rglob("*.png"))
        labels = np.array([names.index(p.parent.name) for p in paths])
        return pixels(paths), labels, [p.relative_to(root).as_posix() for p in paths]

    x, y, rels = split("train")
    vx, vy, _ = split("val")
    finding = label_noise_check(x, y, vx, vy, names, train_files=rels)
    assert finding.status == "warn" and finding.evidence["cause"] == "noisy_labels", finding
    listed = {s["file"] for s in finding.evidence["suspects"]}
    print(
        f"misfiled images: {len(listed & set(moved))} of {len(moved)} found, {len(listed)} listed"
    )
    assert listed <= set(moved) and len(listed) >= 6


# -- the app's gallery -------------------------------------------------------------------------


def _gallery(finding, root):
    from app.common import show_label_suspects

    show_label_suspects(finding, root)


def test_the_app_shows_suspects_as_a_possible_label_errors_gallery(tmp_path, monkeypatch):
    import sys

    from streamlit.testing.v1 import AppTest

    # AppTest runs the function as a script that becomes ``__main__``; put the real one back
    # afterwards, or a later test's multiprocessing "spawn" re-runs that script and fails.
    monkeypatch.setitem(sys.modules, "__main__", sys.modules["__main__"])

    root = make_image_folder(tmp_path / "data", {"cat": 2, "dog": 2})
    suspect = {"given": "cat", "predicted": "dog", "confidence": 0.91, "given_probability": 0.05}
    finding = {
        "check": "label_noise",
        "status": "warn",
        "evidence": {
            "train_suspects": 3,
            "suspects": [
                {**suspect, "row": 0, "file": "cat/img_0001.png"},
                {**suspect, "row": 1, "file": "../outside.png"},  # no thumbnail outside root
                {**suspect, "row": 2, "file": None},
            ],
        },
    }
    at = AppTest.from_function(_gallery, args=(finding, str(root)), default_timeout=30).run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.subheader[0].value == "Possible label errors (3)"
    assert len(at.get("image")) == 1
    captions = [c.value for c in at.caption]
    assert "cat/img_0001.png: **cat** → **dog** (91.0%)" in captions
    assert "training row 2: **cat** → **dog** (91.0%)" in captions
    quiet = {**finding, "status": "ok"}
    at = AppTest.from_function(_gallery, args=(quiet, str(root)), default_timeout=30).run()
    assert not at.subheader and at.expander[0].label == "Possible label errors (3)"
    none = {**finding, "evidence": {"suspects": []}}
    at = AppTest.from_function(_gallery, args=(none, str(root)), default_timeout=30).run()
    assert not at.subheader and not at.expander and not at.caption
