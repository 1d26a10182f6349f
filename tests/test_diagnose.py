"""Diagnoses from designed histories and summaries: every shape and check, firing and healthy."""

from __future__ import annotations

import json
import math

import pytest

from training.babysit.diagnose import (
    batchnorm_mismatch,
    diagnose_fit,
    generalization_gap,
    loss_curve,
    loss_flat,
    underfitting,
    val_at_chance,
)
from training.babysit.findings import Finding, worst_status

NAN, INF = math.nan, math.inf
SETTINGS = {
    "weights": "imagenet",
    "l2": 0.0,
    "dropout": 0.2,
    "head_units": 0,
    "epochs_head": 10,
    "epochs_finetune": 5,
    "unfreeze": None,
}
"""A run's config as ``train`` passes it (the defaults of ``TrainConfig``)."""


def act(op, param, start, to):
    return {"op": op, "param": param, "from": start, "to": to}


def history(losses, val_losses=None, accuracy=None, lr=1e-3):
    """Epoch dicts as the run logger writes them."""
    epochs = []
    for i, loss in enumerate(losses):
        epoch = {"epoch": i + 1, "loss": loss, "lr": lr, "seconds": 0.1}
        if val_losses is not None:
            epoch["val_loss"] = val_losses[i]
        if accuracy is not None:
            epoch["accuracy"] = accuracy[i] if isinstance(accuracy, list) else accuracy
        epochs.append(epoch)
    return epochs


def summary(train, val=None, train_loss=0.3, val_loss=0.4):
    out = {"train": {"accuracy": train, "loss": train_loss, "images": 120}}
    if val is not None:
        out["val"] = {"accuracy": val, "loss": val_loss, "images": 30}
        out["gap"] = train - val
    return out


def strict_json(finding: Finding) -> str:
    """What the run store writes: no NaN/inf may reach it."""
    return json.dumps(finding.to_dict(), allow_nan=False)


HEALTHY_HEAD = [0.8, 0.5, 0.32, 0.22, 0.17, 0.15, 0.14, 0.135]
HEALTHY_VAL = [0.85, 0.55, 0.38, 0.3, 0.26, 0.25, 0.245, 0.245]
HEALTHY_FINETUNE = [0.3, 0.25, 0.23, 0.22, 0.215]
FLAT_10 = [2.3027, 2.3025, 2.3022, 2.3020, 2.3018]
LATE_START_10 = [2.30, 2.29, 2.295, 1.9, 1.4, 1.0, 0.8, 0.7, 0.66]
STILL_FALLING = [0.95, 0.8, 0.68, 0.58, 0.5, 0.43]

# name, losses, val losses, classes, phase, shape, status, action
CURVES = [
    ("healthy", HEALTHY_HEAD, HEALTHY_VAL, 3, "head", "healthy", "ok", None),
    ("converged", [0.5, 0.1, 0.04, 0.02, 0.01, 0.008], None, 3, "head", "healthy", "ok", None),
    ("healthy phase 2", HEALTHY_FINETUNE, None, 3, "finetune", "healthy", "ok", None),
    (
        "phase 2 stays near zero",
        [0.01, 0.012, 0.009, 0.011],
        None,
        3,
        "finetune",
        "healthy",
        "ok",
        None,
    ),
    (
        "phase 2 wobbles a little near the bottom",
        [0.08, 0.07, 0.075, 0.06, 0.065],
        None,
        3,
        "finetune",
        "healthy",
        "ok",
        None,
    ),
    (
        "still falling but validation turned",
        STILL_FALLING,
        [1.0, 0.8, 0.7, 0.65, 0.66, 0.7],
        3,
        "head",
        "healthy",
        "ok",
        None,
    ),
    (
        "high learning rate: fast drop, high plateau",
        [1.3, 1.25, 1.24, 1.25, 1.24],
        None,
        10,
        "head",
        "high_plateau",
        "warn",
        act("lower", "lr", 1e-3, 0.000333),
    ),
    (
        "phase 2 rate destroys the features, then plateaus",
        [2.0, 1.1, 1.1, 1.1],
        None,
        3,
        "finetune",
        "high_plateau",
        "warn",
        act("lower", "finetune_lr", 1e-3, 0.000333),
    ),
    (
        "noisy",
        [0.9, 0.7, 0.95, 0.6, 0.85, 0.5, 0.7, 0.45],
        None,
        3,
        "head",
        "noisy",
        "warn",
        act("lower", "lr", 1e-3, 0.000333),
    ),
    ("late start", LATE_START_10, None, 10, "head", "late_start", "warn", None),
    (
        "still falling",
        STILL_FALLING,
        [1.0, 0.85, 0.72, 0.62, 0.55, 0.48],
        3,
        "head",
        "still_falling",
        "warn",
        act("raise", "epochs_head", 6, 12),
    ),
    (
        "still falling in phase 2, no validation",
        [0.6, 0.5, 0.4, 0.3],
        None,
        3,
        "finetune",
        "still_falling",
        "warn",
        act("raise", "epochs_finetune", 4, 8),
    ),
    (
        "flat: learning rate too low",
        FLAT_10,
        None,
        10,
        "head",
        "flat",
        "warn",
        act("raise", "lr", 1e-3, 0.01),
    ),
    (
        "rising",
        [0.3, 0.4, 0.5, 0.6],
        None,
        3,
        "finetune",
        "rising",
        "warn",
        act("lower", "finetune_lr", 1e-3, 0.000333),
    ),
    (
        "diverged",
        [2.0, 1.5, NAN, INF],
        None,
        3,
        "head",
        "diverged",
        "fail",
        act("lower", "lr", 1e-3, 1e-4),
    ),
]


@pytest.mark.parametrize(
    "losses, val_losses, classes, phase, shape, status, action",
    [case[1:] for case in CURVES],
    ids=[case[0] for case in CURVES],
)
def test_loss_curve_shapes(losses, val_losses, classes, phase, shape, status, action):
    finding = loss_curve(history(losses, val_losses), classes, phase=phase)
    assert finding.check == "loss_curve"
    assert (finding.measured, finding.status) == (shape, status), finding.evidence
    assert finding.action == action
    assert finding.evidence["phase"] == phase
    assert len(finding.evidence["loss"]) == len(losses)
    assert finding.advice
    if status == "ok":
        assert "Nothing to do" in finding.advice
    else:
        flag = {"head": "--lr", "finetune": "--finetune-lr"}[phase]
        if shape == "still_falling":
            flag = f"--epochs-{phase}"
        assert flag in finding.advice
    strict_json(finding)


def test_curve_advice_names_the_phase_flag():
    head = loss_curve(history([1.3, 1.25, 1.24, 1.25, 1.24], lr=0.1), 10)
    assert "from 0.1: --lr 0.0333" in head.advice
    tune = loss_curve(history([2.0, 1.1, 1.1, 1.1]), 3, phase="finetune")
    assert "--finetune-lr" in tune.advice
    longer = loss_curve(history([0.6, 0.5, 0.4, 0.3]), 3, phase="finetune")
    assert "--epochs-finetune" in longer.advice
    assert "--epochs-head" in loss_curve(history(STILL_FALLING), 3).advice


def test_diverged_curve_keeps_plottable_evidence():
    finding = loss_curve(history([2.0, 1.5, NAN, INF]), 3)
    assert finding.evidence["loss"] == [2.0, 1.5, None, None]
    assert finding.evidence["non_finite_epochs"] == [3, 4]
    assert "NaN" in finding.advice


def test_loss_curve_needs_three_epochs():
    assert loss_curve(history([1.0, 0.5]), 3) is None
    assert loss_curve([], 3) is None
    assert loss_curve([{"epoch": 1}, {"epoch": 2}, {"epoch": 3}], 3) is None


def test_unknown_phase_is_refused():
    with pytest.raises(ValueError, match="phase"):
        loss_curve(history(HEALTHY_HEAD), 3, phase="warmup")


SMALL_WOBBLE = [0.68, 0.64, 0.66, 0.61, 0.63, 0.59, 0.6, 0.57]
"""A healthy head on weak features, 2 classes: rises of 0.01–0.02, about a standard error of an
epoch's mean over 244 images (0.65/√256 = 0.04), each followed by a larger fall."""
WILD = [0.9, 0.7, 0.95, 0.6, 0.85, 0.5, 0.7, 0.45]
"""A rate far too high: every other epoch gives back a third of the loss."""


def test_sampling_wobble_on_a_small_dataset_is_not_called_noisy():
    wobbly = history(SMALL_WOBBLE)
    assert loss_curve(wobbly, 2).measured == "noisy"  # without the batch count: as before
    # 244 training images in batches of 32: each epoch's loss averages 8 batch losses.
    finding = loss_curve(wobbly, 2, settings={"batch_size": 32}, batches_per_epoch=8)
    assert (finding.measured, finding.status) == ("healthy", "ok"), finding.evidence
    assert finding.evidence["sampling_examples"] == 256
    # diagnose_fit counts the batches from the run's splits and batch size.
    scores = {**summary(0.7, 0.65), "splits": {"train": 244, "val": 153}}
    findings = diagnose_fit({"head": wobbly}, scores, 2, {**SETTINGS, "batch_size": 32})
    curve = next(f for f in findings if f.check == "loss_curve")
    assert curve.measured == "healthy", curve.evidence
    assert curve.evidence["sampling_examples"] == 256


@pytest.mark.parametrize("train_images", [20_000, 244])
def test_a_wildly_oscillating_curve_is_noisy_on_any_dataset(train_images):
    batches = -(-train_images // 32)
    settings = {"batch_size": 32, "lr": 1e-3}
    finding = loss_curve(history(WILD), 3, settings=settings, batches_per_epoch=batches)
    assert (finding.measured, finding.status) == ("noisy", "warn"), finding.evidence
    assert finding.action == act("lower", "lr", 1e-3, 0.000333)
    assert "raise --batch-size" in finding.advice


# losses, phase, status, action hyperparameter
FLATS = [
    ("learning rate too low", FLAT_10, "head", "warn", "lr"),
    ("falling", [0.9, 0.6, 0.4, 0.3], "head", "ok", None),
    ("already near zero", [0.01, 0.01, 0.01], "finetune", "ok", None),
    ("rising is not flat", [0.3, 0.4, 0.5], "finetune", "ok", None),
    ("flat phase 2", [0.5, 0.499, 0.498, 0.4], "finetune", "warn", "finetune_lr"),
]


@pytest.mark.parametrize(
    "losses, phase, status, hyperparameter",
    [case[1:] for case in FLATS],
    ids=[case[0] for case in FLATS],
)
def test_loss_flat(losses, phase, status, hyperparameter):
    finding = loss_flat(history(losses, lr=1e-5), 10, phase=phase)
    assert finding.check == "loss_flat" and finding.status == status
    assert finding.evidence["phase"] == phase
    assert len(finding.evidence["loss"]) == 3
    if hyperparameter is None:
        assert finding.action is None and finding.advice == "Nothing to do."
    else:
        assert finding.action == act("raise", hyperparameter, 1e-5, 1e-4)
        flag = "--lr" if phase == "head" else "--finetune-lr"
        assert f"from 1e-05: {flag} 0.0001" in finding.advice
    strict_json(finding)


def test_loss_flat_needs_the_first_epochs_and_finite_losses():
    assert loss_flat(history([2.3, 2.3]), 10) is None
    assert loss_flat(history([2.3, NAN, 2.3, 2.3]), 10) is None
    assert loss_flat([{"epoch": 1}, {"epoch": 2}, {"epoch": 3}], 10) is None


# train, val, l2, status, advice fragments
GAPS = [
    ("small gap", 0.95, 0.9, 0.0, "ok", ["Nothing to do"]),
    ("overfitting", 0.95, 0.75, 0.0, "warn", ["--l2 0.0001", "--dropout 0.4", "--no-augment"]),
    ("severe overfitting", 1.0, 0.5, 1e-3, "fail", ["--l2 0.01", "--unfreeze 1"]),
]


@pytest.mark.parametrize(
    "train, val, l2, status, fragments",
    [case[1:] for case in GAPS],
    ids=[case[0] for case in GAPS],
)
def test_generalization_gap(train, val, l2, status, fragments):
    finding = generalization_gap(summary(train, val), {**SETTINGS, "l2": l2})
    assert finding.check == "generalization_gap" and finding.status == status
    assert finding.measured == pytest.approx(train - val)
    assert finding.evidence["train_accuracy"] == train
    assert finding.evidence["val_accuracy"] == val
    for fragment in fragments:
        assert fragment in finding.advice
    if status == "ok":
        assert finding.action is None
    else:
        assert finding.action == act("raise", "l2", l2, 0.01 if l2 else 1e-4)


def test_gap_needs_a_validation_score_and_computes_a_missing_gap():
    assert generalization_gap(summary(0.9)) is None
    assert generalization_gap({}) is None
    scores = summary(0.9, 0.6)
    del scores["gap"]
    assert generalization_gap(scores).measured == pytest.approx(0.3)


# train, val, l2, status, action  (3 classes: underfitting below 1/3 + 0.6 * 2/3 = 0.733)
UNDERFITS = [
    ("fits", 0.95, 0.93, 0.0, "ok", None),
    ("low but with a gap is not underfitting", 0.6, 0.4, 0.0, "ok", None),
    ("low, no gap", 0.5, 0.48, 0.0, "warn", act("raise", "unfreeze", 2, 3)),
    ("low, no gap, with L2", 0.5, 0.48, 3.0, "warn", act("lower", "l2", 3.0, 0.3)),
    ("low, no validation split", 0.5, None, 0.0, "warn", act("raise", "unfreeze", 2, 3)),
]


@pytest.mark.parametrize(
    "train, val, l2, status, action",
    [case[1:] for case in UNDERFITS],
    ids=[case[0] for case in UNDERFITS],
)
def test_underfitting(train, val, l2, status, action):
    finding = underfitting(summary(train, val), 3, {**SETTINGS, "l2": l2})
    assert finding.check == "underfitting" and finding.status == status
    assert finding.action == action
    assert finding.evidence["threshold"] == pytest.approx(1 / 3 + 0.6 * 2 / 3)
    if status == "warn":
        assert ("--l2 0.3" in finding.advice) == (l2 > 0)
        assert "--unfreeze 3" in finding.advice and "--head-units 256" in finding.advice
    strict_json(finding)


def test_underfitting_needs_a_training_score():
    assert underfitting({"val": {"accuracy": 0.5}}, 3) is None


# classes, train, val, status
CHANCES = [
    ("labels differ between splits", 3, 0.95, 0.35, "fail"),
    ("swapped labels: below chance", 2, 1.0, 0.0, "fail"),
    ("generalises", 3, 0.95, 0.9, "ok"),
    ("has not learned the training set either", 3, 0.4, 0.33, "ok"),
]


@pytest.mark.parametrize(
    "classes, train, val, status", [case[1:] for case in CHANCES], ids=[c[0] for c in CHANCES]
)
def test_val_at_chance(classes, train, val, status):
    finding = val_at_chance(summary(train, val), classes)
    assert finding.check == "val_at_chance" and finding.status == status
    assert finding.evidence["chance"] == pytest.approx(1 / classes)
    if status == "fail":
        assert "class folder names" in finding.advice and "preprocessed" in finding.advice
    assert finding.action is None


def test_val_at_chance_needs_both_scores():
    assert val_at_chance(summary(0.95), 3) is None


# fit accuracy (last epoch), inference accuracy, status
BATCHNORMS = [
    ("statistics broken", 0.98, 0.36, "fail"),
    ("inference better than fit (dropout, augmentation)", 0.9, 0.95, "ok"),
    ("a small fall", 0.95, 0.8, "ok"),
    ("just under the threshold", 0.9, 0.65, "ok"),
]


@pytest.mark.parametrize(
    "fit, inference, status", [case[1:] for case in BATCHNORMS], ids=[c[0] for c in BATCHNORMS]
)
def test_batchnorm_mismatch(fit, inference, status):
    epochs = history([1.0, 0.5, 0.2], accuracy=[0.5, 0.8, fit])
    finding = batchnorm_mismatch(epochs, summary(inference, 0.3), 3)
    assert finding.check == "batchnorm_mismatch" and finding.status == status
    assert finding.evidence["fit_accuracy"] == fit
    assert finding.evidence["inference_accuracy"] == inference
    if status == "fail":
        assert "BatchNorm" in finding.advice and "--weights imagenet" in finding.advice


def test_batchnorm_mismatch_needs_a_fit_accuracy_and_a_training_score():
    assert batchnorm_mismatch(history([1.0, 0.5, 0.2]), summary(0.4), 3) is None
    assert batchnorm_mismatch(history([1.0], accuracy=[NAN]), summary(0.4), 3) is None
    assert batchnorm_mismatch(history([1.0], accuracy=0.9), {}, 3) is None
    assert batchnorm_mismatch([], summary(0.4), 3) is None


# -- diagnose_fit --------------------------------------------------------------------------------


def by_check(findings, phase=None):
    return {
        f.check: f for f in findings if phase is None or f.evidence.get("phase") in (phase, None)
    }


def test_a_healthy_fit_is_all_ok():
    histories = {
        "head": history(
            HEALTHY_HEAD, HEALTHY_VAL, accuracy=[0.6, 0.8, 0.9, 0.93, 0.95] + [0.96] * 3
        ),
        "finetune": history(HEALTHY_FINETUNE, accuracy=0.95, lr=1e-4),
    }
    findings = diagnose_fit(histories, summary(0.97, 0.94), 3)
    assert worst_status(findings) == "ok", [(f.check, f.measured) for f in findings]
    assert [(f.check, f.evidence.get("phase")) for f in findings] == [
        ("loss_flat", "head"),
        ("loss_curve", "head"),
        ("loss_flat", "finetune"),
        ("loss_curve", "finetune"),
        ("batchnorm_mismatch", None),
        ("train_mode_gap", "finetune"),
        ("val_at_chance", None),
        ("generalization_gap", None),
        ("underfitting", None),
    ]
    assert all(f.action is None for f in findings)
    for finding in findings:
        strict_json(finding)


def test_missing_data_leaves_checks_out_rather_than_guessing():
    findings = diagnose_fit({"head": history([1.0, 0.5])}, summary(0.97), 3)
    assert [f.check for f in findings] == ["underfitting"]
    assert diagnose_fit({}, {}, 3) == []
    head_only = diagnose_fit({"head": history(HEALTHY_HEAD), "finetune": []}, summary(0.97), 3)
    assert {f.evidence.get("phase") for f in head_only} == {"head", None}


def test_validation_at_chance_is_the_story_not_overfitting():
    histories = {"head": history(HEALTHY_HEAD, accuracy=0.96)}
    checks = by_check(diagnose_fit(histories, summary(0.96, 0.34), 3))
    assert checks["val_at_chance"].status == "fail"
    gap = checks["generalization_gap"]
    assert gap.status == "warn" and gap.action is None
    assert gap.measured == pytest.approx(0.62)
    assert gap.evidence["explained_by"] == "val_at_chance"
    assert "val_at_chance" in gap.advice and "regularization will not" in gap.advice


def test_broken_batchnorm_is_the_story_not_underfitting():
    histories = {"head": history(HEALTHY_HEAD, accuracy=0.98)}
    checks = by_check(diagnose_fit(histories, summary(0.36, 0.35), 3))
    assert checks["batchnorm_mismatch"].status == "fail"
    assert checks["val_at_chance"].status == "ok"  # training is at chance in inference mode too
    under = checks["underfitting"]
    assert under.status == "warn" and under.action is None
    assert under.evidence["explained_by"] == "batchnorm_mismatch"


def test_a_loss_that_never_fell_is_the_story_not_capacity():
    histories = {"head": history(FLAT_10, accuracy=0.1, lr=1e-6)}
    findings = diagnose_fit(histories, summary(0.11, 0.1), 10)
    checks = by_check(findings)
    assert checks["loss_flat"].status == "warn"
    assert checks["loss_flat"].action == act("raise", "lr", 1e-6, 1e-5)
    curve = checks["loss_curve"]
    assert curve.measured == "flat" and curve.status == "warn"
    assert curve.action is None  # the same change is already asked for once
    under = checks["underfitting"]
    assert under.evidence["explained_by"] == "loss_curve" and under.action is None
    actions = [f.action for f in findings if f.action]
    assert actions == [act("raise", "lr", 1e-6, 1e-5)]


def test_a_late_start_is_not_called_a_low_learning_rate():
    checks = by_check(diagnose_fit({"head": history(LATE_START_10)}, summary(0.9, 0.88), 10))
    assert checks["loss_curve"].measured == "late_start"
    flat = checks["loss_flat"]
    assert flat.status == "warn" and flat.action is None
    assert flat.evidence["explained_by"] == "loss_curve"


def test_each_phase_is_judged_on_its_own_with_its_own_hyperparameter():
    histories = {
        "head": history(HEALTHY_HEAD, accuracy=0.96),
        "finetune": history([2.0, 1.1, 1.1, 1.1], accuracy=0.4, lr=1e-2),
    }
    findings = diagnose_fit(histories, summary(0.45, 0.43), 3, SETTINGS)
    head = by_check(findings, "head")["loss_curve"]
    tune = by_check(findings, "finetune")["loss_curve"]
    assert head.status == "ok" and head.evidence["phase"] == "head"
    assert tune.measured == "high_plateau" and tune.evidence["phase"] == "finetune"
    assert tune.action["param"] == "finetune_lr"
    under = by_check(findings)["underfitting"]
    assert under.status == "warn" and under.action == act("raise", "unfreeze", 2, 3)


def test_l2_reaches_the_advice_and_the_action():
    histories = {"head": history(HEALTHY_HEAD, accuracy=0.5)}
    checks = by_check(diagnose_fit(histories, summary(0.5, 0.49), 3, {**SETTINGS, "l2": 3.0}))
    assert checks["underfitting"].action == act("lower", "l2", 3.0, 0.3)
    checks = by_check(diagnose_fit(histories, summary(1.0, 0.7), 3, {**SETTINGS, "l2": 1e-3}))
    assert "--l2 0.01" in checks["generalization_gap"].advice


def test_advice_names_the_rate_the_flag_set_not_the_decayed_one():
    epochs = history(FLAT_10)
    for epoch, rate in zip(epochs, [1e-5, 8e-6, 5e-6, 2e-6, 1e-6], strict=True):
        epoch["lr"] = rate
    assert "from 1e-05" in loss_flat(epochs, 10).advice


# -- advice relative to the run ----------------------------------------------------------------


def test_validation_clearly_above_training_is_a_warning_naming_the_labels_first():
    finding = generalization_gap(summary(0.37, 0.48), SETTINGS)
    assert finding.status == "warn" and finding.measured == pytest.approx(-0.11)
    assert finding.advice.index("label_noise") < finding.advice.index("dropout 0.2")
    assert "too easy or too small (30 images)" in finding.advice
    assert finding.action is None  # dropout 0.2 is no suspect
    strong = generalization_gap(summary(0.6, 0.75), {**SETTINGS, "dropout": 0.95})
    assert strong.action == act("lower", "dropout", 0.95, 0.475)
    assert generalization_gap(summary(0.8, 0.83), SETTINGS).status == "ok"


def test_advice_never_proposes_the_value_in_use_or_one_past_the_limits():
    wide = {**SETTINGS, "head_units": 256, "epochs_finetune": 0}
    under = underfitting(summary(0.5, 0.48), 3, wide)
    assert under.action == act("raise", "head_units", 256, 512)
    assert "--head-units 512" in under.advice and "--head-units 256" not in under.advice
    widest = {**SETTINGS, "head_units": 4096, "epochs_finetune": 0, "unfreeze": "all"}
    under = underfitting(summary(0.5, 0.48), 3, widest)
    assert under.action is None and "--head-units" not in under.advice
    assert "--epochs-head 20" in under.advice
    top = loss_flat(history(FLAT_10, lr=1.0), 10, settings={"lr": 1.0})
    assert top.action is None and "already the highest" in top.advice


def test_wrong_training_labels_explain_the_curves_the_gap_and_underfitting():
    labels = Finding(
        "label_noise", "fail", 0.5, "few", "The training labels...", {"cause": "labels"}
    )
    histories = {"head": history(FLAT_10, accuracy=0.37)}
    findings = diagnose_fit(histories, summary(0.37, 0.48), 10, SETTINGS, causes=[labels])
    for finding in findings:
        if finding.status != "ok":
            assert finding.status == "warn" and finding.action is None, finding.check
            assert finding.evidence["explained_by"] == "label_noise"
            assert "labels" in finding.advice
    noisy = Finding("label_noise", "warn", 0.2, "few", "Some labels", {"cause": "noisy_labels"})
    findings = diagnose_fit(histories, summary(0.37, 0.48), 10, SETTINGS, causes=[noisy])
    assert by_check(findings)["loss_flat"].action == act("raise", "lr", 1e-3, 0.01)


def test_features_at_chance_explain_the_head_curve_not_a_loss_that_never_moved():
    weak = Finding("label_noise", "warn", 0.5, "few", "Weak features", {"cause": "features"})
    histories = {"head": history(FLAT_10, accuracy=0.1)}
    findings = diagnose_fit(histories, summary(0.1, 0.1), 10, SETTINGS, causes=[weak])
    curve = by_check(findings)["loss_curve"]
    assert curve.action is None and curve.evidence["explained_by"] == "label_noise"
    # ImageNet weights were in use: the advice is another backbone, never the weights again.
    assert "--backbone" in curve.advice and "--weights imagenet" not in curve.advice
    # A loss that did not move even 1% is the rate, whatever the features: it keeps its action.
    flat = by_check(findings)["loss_flat"]
    assert "explained_by" not in flat.evidence and flat.action["param"] == "lr"
    random = diagnose_fit(
        histories, summary(0.1, 0.1), 10, {**SETTINGS, "weights": "none"}, causes=[weak]
    )
    advice = by_check(random)["loss_curve"].advice
    assert "pretrained weights (--weights PATH" in advice and "where it can be downloaded" in advice


def test_a_loss_that_fell_only_through_its_l2_penalty_blames_l2_not_the_rate():
    epochs = history([6.0, 3.1, 2.4, 2.35, 2.33], lr=1e-3)
    for epoch, data in zip(epochs, [2.31, 2.30, 2.29, 2.29, 2.29], strict=True):
        epoch["data_loss"] = data
    settings = {**SETTINGS, "l2": 1.0}
    curve = loss_curve(epochs, 10, settings=settings)
    assert (curve.measured, curve.status) == ("held_by_l2", "warn")
    assert curve.action == act("lower", "l2", 1.0, 0.1) and "--l2 0.1" in curve.advice
    flat = loss_flat(epochs, 10, settings=settings)
    assert flat.action == act("lower", "l2", 1.0, 0.1)
    # A fast drop and a plateau near ln(C), at a high rate, while the penalty fell far more:
    # L2 holds it up, not the rate.
    plateau = history([6.36, 2.99, 2.10, 1.58, 1.40, 1.27, 1.2, 1.17], lr=0.1)
    for epoch, data in zip(plateau, [1.23, 1.03, 1.11, 1.04, 1.07, 1.07, 1.05, 1.07], strict=True):
        epoch["data_loss"] = data
    curve = loss_curve(plateau, 3, settings={**settings, "lr": 0.1})
    assert curve.measured == "held_by_l2" and curve.action == act("lower", "l2", 1.0, 0.1)
    healthy = history(HEALTHY_HEAD)
    for epoch in healthy:
        epoch["data_loss"] = epoch["loss"] - 0.001  # a sane L2's penalty: held by nothing
    assert loss_curve(healthy, 3, settings=settings).measured == "healthy"


def test_dropout_that_holds_the_fit_back_is_named_not_the_rate():
    epochs = history(LATE_START_10, accuracy=[0.34] * 6 + [0.4, 0.45, 0.5])
    findings = diagnose_fit({"head": epochs}, summary(0.9, 0.88), 10, {**SETTINGS, "dropout": 0.95})
    checks = by_check(findings)
    gap = checks["train_mode_gap"]
    assert gap.status == "warn" and gap.action == act("lower", "dropout", 0.95, 0.475)
    assert "--dropout 0.475" in gap.advice
    assert checks["loss_curve"].evidence["explained_by"] == "train_mode_gap"
    assert checks["loss_curve"].action is None
    mild = diagnose_fit({"head": history(HEALTHY_HEAD, accuracy=0.8)}, summary(0.9, 0.88), 3)
    assert by_check(mild)["train_mode_gap"].status == "ok"


def test_a_phase_with_nothing_trainable_is_not_blamed_on_the_rate():
    findings = diagnose_fit(
        {"head": history(FLAT_10, accuracy=0.1)}, summary(0.1, 0.1), 10, trainable={"head": 0}
    )
    checks = by_check(findings)
    assert checks["loss_flat"].status == "fail" and checks["loss_flat"].action is None
    assert "Nothing is trainable" in checks["loss_flat"].advice
    assert checks["loss_curve"].action is None
    # Dropout's fresh masks move a frozen head's epoch loss by a few percent: still frozen.
    wobble = [2.30, 2.25, 2.33, 2.27, 2.31]
    frozen = diagnose_fit(
        {"head": history(wobble, accuracy=0.1)}, summary(0.1, 0.1), 10, trainable={"head": 0}
    )
    assert by_check(frozen)["loss_flat"].status == "fail"
