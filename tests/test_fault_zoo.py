"""The fault zoo in miniature: each planted fault is a real ``train`` or ``check`` run on tiny
generated images, and the finding must name it with the right knob and direction.

The images are the zoo's look-alike set (``bench/zoo_data.py``: three classes of distinct images
sharing layout and colours per class) at 32 px; the backbone is VGG16 with random weights (no
BatchNorm, so inference and training agree). ``bench/faults.py`` runs the same plants on real
photos and on the demo classes; its tables are in docs/BENCHMARKS.md.
"""

from __future__ import annotations

import shutil

import keras
import numpy as np
import pytest

from bench import zoo_data
from tests.imagegen import class_image
from training.babysit.diagnose import batchnorm_mismatch
from training.config import TrainConfig
from training.errors import TrainingDiverged
from training.fit.two_phase import train
from training.gate import run_gate

LR = 1e-2
"""The healthy rate: inside the window ``check``'s lr_range suggests for these features."""
BASE = dict(
    backbone="VGG16",
    weights="none",
    image_size=32,
    batch_size=16,
    epochs_head=20,
    epochs_finetune=0,
    lr=LR,
    finetune_lr=LR / 10,
    seed=0,
)
PHASE2 = dict(epochs_finetune=3, unfreeze=1)


@pytest.fixture(scope="module")
def lookalike(tmp_path_factory):
    """60 training and 20 validation images per class, every one drawn separately."""
    return zoo_data.make_lookalike(tmp_path_factory.mktemp("zoo") / "base", 60, 20, size=32)


@pytest.fixture
def data(lookalike, tmp_path):
    """A copy of the healthy set to plant a fault in."""
    return shutil.copytree(lookalike, tmp_path / "data")


def fit(data, **overrides):
    config = TrainConfig(data=str(data), **{**BASE, **overrides})
    return train(config, verbose=0, echo=lambda m: None).findings


def check(data, **overrides):
    config = TrainConfig(data=str(data), **{**BASE, **overrides})
    return run_gate(config, verbose=0, echo=lambda m: None).findings


def named(findings, check_name, statuses=("warn", "fail")):
    """The finding of ``check_name`` (of any phase) that warns or fails."""
    hits = [f for f in findings if f["check"] == check_name and f["status"] in statuses]
    assert hits, [(f["check"], f["status"], f["measured"]) for f in findings]
    return hits[0]


def moves(finding, param, start, to):
    assert finding["action"] == {
        "op": finding["action"]["op"],
        "param": param,
        "from": start,
        "to": to,
    }, finding
    assert ("raise" if to > start else "lower") == finding["action"]["op"]


def problems(findings):
    return {(f["check"], f["status"]) for f in findings if f["status"] != "ok"}


@pytest.mark.core
def test_the_healthy_look_alike_set_raises_nothing(lookalike):
    assert problems(check(lookalike)) == set()
    assert problems(fit(lookalike)) == set()


def test_a_learning_rate_1000x_too_high_in_phase_1_is_stopped(data):
    with pytest.raises(TrainingDiverged) as stopped:
        fit(data, lr=10.0)  # 1000 × LR
    moves(named(stopped.value.findings, "loss_explosion", ("fail",)), "lr", 10.0, 1.0)


def test_a_learning_rate_1000x_too_high_in_phase_2_is_stopped(data):
    with pytest.raises(TrainingDiverged) as stopped:
        fit(data, **PHASE2, finetune_lr=1.0)  # 1000 × LR / 10
    explosion = named(stopped.value.findings, "loss_explosion", ("fail",))
    moves(explosion, "finetune_lr", 1.0, 0.1)
    assert explosion["evidence"]["phase"] == "finetune"


def test_a_learning_rate_1e4_too_low_in_phase_1_is_flat(data):
    flat = named(fit(data, lr=1e-6), "loss_flat")  # 1e-4 × LR
    moves(flat, "lr", 1e-6, 1e-5)
    assert "--lr 1e-05" in flat["advice"]


def test_a_learning_rate_1e4_too_low_in_phase_2_is_flat(data):
    findings = fit(data, **PHASE2, epochs_head=0, finetune_lr=1e-7)  # 1e-4 × LR / 10
    flat = named(findings, "loss_flat")
    assert flat["evidence"]["phase"] == "finetune"
    moves(flat, "finetune_lr", 1e-7, 1e-6)


def test_an_l2_1e4_too_strong_is_named_with_a_lower_l2(data):
    findings = fit(data, l2=1.0)  # 1e4 × the usual 1e-4
    lowered = [f for f in findings if f["status"] != "ok" and f["action"]]
    assert lowered, problems(findings)
    for finding in lowered:  # never "raise the rate"
        moves(finding, "l2", 1.0, 0.1)
    assert named(findings, "underfitting")["advice"].count("--l2 0.1") == 1


def test_dropout_095_is_named_with_a_lower_dropout(data):
    gap = named(fit(data, dropout=0.95), "train_mode_gap")
    moves(gap, "dropout", 0.95, 0.475)


def test_shuffled_training_labels_are_named_as_a_label_problem(data):
    zoo_data.relabel_training(data, 1.0, np.random.default_rng(0))
    gate = check(data)
    noise = named(gate, "label_noise", ("fail",))
    assert "training labels do not match" in noise["advice"].lower()
    lr_range = next(f for f in gate if f["check"] == "lr_range")
    assert "labels" in lr_range["advice"] or lr_range["status"] == "ok"
    for finding in fit(data):
        if finding["status"] != "ok" and finding["check"] != "label_noise":
            assert finding["status"] == "warn" and finding["action"] is None, finding
            assert "label" in finding["advice"].lower(), finding


def test_flipped_training_labels_are_listed_as_suspects(data):
    moved = set(zoo_data.relabel_training(data, 0.2, np.random.default_rng(0)))
    noise = named(check(data), "label_noise")
    listed = {s["file"] for s in noise["evidence"]["suspects"]}
    total = noise["evidence"]["suspects_total"]
    # The listed ones (the top 2%) are misfiled; the count named is about the number moved.
    assert listed and len(listed & moved) >= 0.8 * len(listed), (listed, moved)
    assert 0.7 * len(moved) <= total <= 1.3 * len(moved), (total, len(moved))


def test_exact_copies_in_validation_fail_the_leakage_check(data):
    zoo_data.leak_copies(data, 0.1, np.random.default_rng(0))
    leakage = named(check(data), "leakage", ("fail",))
    assert leakage["evidence"]["exact"] > 0 and "exact" in leakage["advice"]


def test_a_class_20x_smaller_says_the_loss_is_weighted_by_class(data):
    zoo_data.shrink_class(data, "disc", 20)
    balance = named(check(data), "class_balance")
    assert "--class-weights auto" in balance["advice"]


def test_five_images_per_class_fail_as_too_few(data):
    zoo_data.keep_per_class(data, 5)
    few = named(check(data), "too_few_images", ("fail",))
    assert few["measured"] == 5 and "Add images" in few["advice"]


def test_a_frozen_head_is_named_frozen_not_a_low_rate(data, monkeypatch):
    import training.gate as gate
    import training.model.classifier as model

    original = model.build_head

    def frozen(*args, **kwargs):
        head = original(*args, **kwargs)
        head.trainable = False
        return head

    monkeypatch.setattr(model, "build_head", frozen)
    monkeypatch.setattr(gate, "build_head", frozen)
    assert "frozen" in named(check(data), "overfit_tiny_subset", ("fail",))["advice"]
    findings = fit(data, epochs_head=5)
    assert "Nothing is trainable" in named(findings, "loss_flat", ("fail",))["advice"]
    assert all(f["action"] is None for f in findings if f["status"] != "ok")


def test_blank_images_fail_the_tiny_subset_naming_constant_inputs(data):
    zoo_data.blank_all(data)
    overfit = named(check(data), "overfit_tiny_subset", ("fail",))
    assert "constant" in overfit["advice"]


def test_too_few_epochs_ask_for_more_epochs(data):
    """Three epochs of four steps each (batch 64): too little training, at a sane rate."""
    curve = named(fit(data, epochs_head=3, batch_size=64), "loss_curve")
    assert curve["measured"] == "still_falling"
    moves(curve, "epochs_head", 3, 6)


@pytest.mark.slow
def test_batchnorm_trained_from_scratch_scores_near_chance_in_inference_mode():
    """Not a run of ours (``train`` recalibrates random-weight BatchNorm, so it cannot happen
    there): the check on a plain Keras fit whose statistics are stale."""
    keras.utils.set_random_seed(0)
    images = np.stack([np.array(class_image(c, s, 48)) for c in range(3) for s in range(60)])
    labels = np.repeat(np.arange(3), 60)
    model = keras.applications.MobileNetV2(
        weights=None, input_shape=(48, 48, 3), classes=3, alpha=0.35
    )
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        jit_compile=False,  # as our fit does on a CPU; XLA's compile would only add time here
    )
    fit = model.fit(images / 127.5 - 1, labels, epochs=10, batch_size=32, verbose=0)
    history = [
        {"epoch": i + 1, "loss": fit.history["loss"][i], "accuracy": fit.history["accuracy"][i]}
        for i in range(10)
    ]
    loss, accuracy = model.evaluate(images / 127.5 - 1, labels, verbose=0)
    summary = {"train": {"accuracy": accuracy, "loss": loss, "images": len(images)}}
    finding = batchnorm_mismatch(history, summary, 3)
    assert history[-1]["accuracy"] > 0.9
    assert finding.status == "fail", (history[-1]["accuracy"], accuracy)
    assert finding.evidence
