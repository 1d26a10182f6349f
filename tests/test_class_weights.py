"""``--class-weights auto|balanced|none``: decided from the audit, said in the summary, the same
for a search's every trial; per-class recall in every run's summary."""

from __future__ import annotations

import numpy as np
import pytest

from tests.imagegen import make_image_folder
from tests.test_train import tiny_config
from training.babysit.thresholds import IMBALANCE_WARN
from training.config import TrainConfig
from training.fit.class_weights import (
    balanced_class_weights,
    class_lines,
    class_weighting,
    per_class_scores,
    weighting_line,
)
from training.fit.two_phase import train
from tuner.config import SearchConfig
from tuner.heads import HeadHyperparameters, HeadTrainer

LABELS = np.array([0] * 40 + [1] * 10)  # 4× apart: above the audit's warning threshold


def test_auto_weights_only_above_the_audit_threshold():
    assert IMBALANCE_WARN < 4.0
    weighted = class_weighting("auto", 4.0, LABELS, 2)
    assert weighted.applied
    np.testing.assert_allclose(weighted.weights, [50 / 80, 50 / 20])
    # Every class counts the same, and the mean weight over the images stays 1.
    counts = np.bincount(LABELS)
    assert weighted.weights[0] * counts[0] == pytest.approx(weighted.weights[1] * counts[1])
    assert weighted.weights[LABELS].mean() == pytest.approx(1.0)
    assert not class_weighting("auto", IMBALANCE_WARN, LABELS, 2).applied
    assert class_weighting("balanced", 1.0, LABELS, 2).applied
    assert not class_weighting("none", 40.0, LABELS, 2).applied


def test_the_record_and_the_line_say_what_was_decided():
    record = class_weighting("auto", 4.0, LABELS, 2).record(["cat", "dog"])
    assert record["applied"] and record["weights"] == {"cat": 0.625, "dog": 2.5}
    line = weighting_line(record)
    assert "inverse class frequency" in line and "4× apart, over 3×" in line
    assert "dog ×2.50" in line
    off = weighting_line(class_weighting("auto", 1.5, LABELS, 2).record(["cat", "dog"]))
    assert off.startswith("class weights: none") and "not over 3×" in off
    assert "--class-weights none" in weighting_line(
        class_weighting("none", 9.0, LABELS, 2).record(["cat", "dog"])
    )


def test_per_class_scores_count_hits_per_class():
    labels = np.array([0, 0, 0, 1, 1])
    probabilities = np.eye(3)[[0, 0, 1, 1, 0]]
    scores = per_class_scores(labels, probabilities, ["a", "b", "c"])
    assert scores["a"] == {"precision": round(2 / 3, 4), "recall": round(2 / 3, 4), "images": 3}
    assert scores["b"] == {"precision": 0.5, "recall": 0.5, "images": 2}
    assert scores["c"] == {"precision": None, "recall": None, "images": 0}


def test_default_is_auto_and_a_search_hands_it_to_every_fine_tune():
    assert TrainConfig(data="d", backbone="VGG16").class_weights == "auto"
    search = SearchConfig(data="d", backbones=["VGG16"], class_weights="none")
    assert search.train_config("VGG16", lr=0.01).class_weights == "none"


def lopsided_features(n: int, seed: int):
    """Two overlapping classes, one in ten images of the second."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.1).astype(int)
    x = rng.normal(0, 1, (n, 16)) + np.eye(2, 16)[y]
    return x.astype("float32"), y


@pytest.mark.core
def test_head_trials_with_class_weights_find_the_small_class():
    """Unweighted, a head on overlapping 9:1 features calls nearly everything the large class;
    with the search's balanced weights it finds most of the small one."""
    x, y = lopsided_features(400, 0)
    vx, vy = lopsided_features(400, 1)
    recalls = []
    for weights in (None, balanced_class_weights(y, 2)):
        trainer = HeadTrainer(x, y, vx, vy, 2, class_weights=weights)
        trainer.train(HeadHyperparameters(lr=1e-2), epochs=10, seed=3)
        guesses = trainer._model(0, "adam").predict_on_batch(vx).argmax(axis=1)
        recalls.append(np.mean(guesses[vy == 1] == 1))
    assert recalls[0] < 0.3 and recalls[1] > 0.5, recalls


@pytest.mark.core
def test_train_weights_an_imbalanced_set_by_default_and_reports_recall(tmp_path):
    data = make_image_folder(tmp_path / "lopsided", {"red": 32, "blue": 8}, size=32)
    head_only = dict(backbone="VGG16", epochs_finetune=0, seed=0)
    weighted = train(tiny_config(data, **head_only), verbose=0, echo=lambda m: None)
    record = weighted.summary["class_weights"]
    assert record["setting"] == "auto" and record["applied"]
    assert record["weights"]["blue"] > record["weights"]["red"]
    per_class = weighted.summary["per_class"]
    assert per_class["split"] == "val"
    assert {c["images"] for c in per_class["classes"].values()} == {6, 2}
    lines = class_lines(weighted.summary)
    assert any(line.startswith("recall per class (val): ") for line in lines), lines
    balance = next(f for f in weighted.findings if f["check"] == "class_balance")
    assert "train command weights the loss by inverse class frequency" in balance["advice"]

    plain = tiny_config(data, **head_only, class_weights="none")
    plain = train(plain, verbose=0, echo=lambda m: None)
    assert plain.run_id != weighted.run_id
    assert plain.summary["class_weights"]["applied"] is False
    balance = next(f for f in plain.findings if f["check"] == "class_balance")
    assert "train with --class-weights auto" in balance["advice"]
