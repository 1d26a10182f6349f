"""One diagnosis per run: the root cause first, what it explains folded, no conflicting actions."""

from __future__ import annotations

import json

import pytest

from tests.cli_process import run_cli
from tests.imagegen import make_mixed_folder
from tests.test_lr_range import RATES, u_curve
from training.babysit.diagnosis import format_diagnosis, reconcile
from training.babysit.findings import Finding, format_findings, worst_status
from training.babysit.lr_range import analyse_sweep
from training.babysit.scores import underfitting

SETTINGS = {"weights": "none", "image_size": 64, "l2": 0.06, "lr": 0.01, "epochs_finetune": 3}


def weak_run() -> list[Finding]:
    """What a healthy run on random-weight features said before: every check on its own."""
    return [
        Finding("class_balance", "ok", 1.0, "≤ 3", "Nothing to do."),
        Finding(
            "label_noise",
            "warn",
            "features weak",
            "",
            "The features separate these classes only weakly.",
            {"cause": "weak_features", "feature_quality": 0.58, "chance": 0.5},
        ),
        Finding("lr_range", "warn", "flat", "", "The loss falls little.", {"cause": "features"}),
        Finding("overfit_tiny_subset", "warn", "100%, loss 0.08", "", "Nearly memorised."),
        Finding(
            "loss_curve",
            "warn",
            "noisy",
            "",
            "Lower --lr 3x.",
            {"phase": "head"},
            {"op": "lower", "param": "lr", "from": 0.01, "to": 0.00333},
        ),
        Finding(
            "underfitting",
            "warn",
            0.55,
            "",
            "Lower --l2.",
            {},
            {"op": "lower", "param": "l2", "from": 0.06, "to": 0.006},
        ),
        Finding(
            "edge_of_range",
            "warn",
            "l2 at the high edge",
            "",
            "Search L2 up to 1.",
            {},
            {"op": "widen", "param": "l2", "edge": "high", "to": [0.01, 1.0]},
        ),
    ]


def test_weak_features_are_the_one_diagnosis_and_explain_the_rest():
    findings, diagnosis = reconcile(weak_run(), SETTINGS)
    assert diagnosis["cause"] == "weak_features" and diagnosis["check"] == "label_noise"
    assert diagnosis["sentence"].startswith("Weak features:")
    assert "(validation 58% out of fold, chance 50%)" in diagnosis["sentence"]
    assert "random weights" in diagnosis["sentence"]
    assert diagnosis["sentence"].count(". ") == 0  # one sentence
    assert 1 <= len(diagnosis["actions"]) <= 2
    assert diagnosis["actions"][0].startswith("--weights PATH")
    assert not any(a.startswith("--weights imagenet") for a in diagnosis["actions"])
    # One warn: the root cause. The symptoms keep their numbers, lose their actions.
    assert [f.check for f in findings if f.status != "ok"] == ["label_noise"]
    assert worst_status(findings) == "warn"
    folded = {f.check: f for f in findings if "explained_by" in f.evidence}
    assert (
        set(folded)
        == set(diagnosis["explains"])
        == {
            "lr_range",
            "overfit_tiny_subset",
            "loss_curve",
            "underfitting",
            "edge_of_range",
        }
    )
    assert all(f.action is None and f.evidence["status_before"] == "warn" for f in folded.values())
    assert folded["loss_curve"].measured == "noisy"
    assert "Explained by label_noise" in folded["underfitting"].advice
    text = format_diagnosis(diagnosis)
    assert text.startswith("Diagnosis: Weak features") and "→ --weights PATH" in text


def test_reconcile_is_idempotent():
    once, first = reconcile(weak_run(), SETTINGS)
    twice, second = reconcile([f.to_dict() for f in once], SETTINGS)
    assert [f.to_dict() for f in twice] == [f.to_dict() for f in once]
    assert second == first


def test_actions_never_conflict_and_the_root_cause_acts_first():
    lower = Finding(
        "underfitting", "warn", 0.5, "", "Lower --l2.", {},
        {"op": "lower", "param": "l2", "from": 0.06, "to": 0.006},
    )  # fmt: skip
    widen = Finding(
        "edge_of_range", "warn", "edge", "", "Widen L2.", {},
        {"op": "widen", "param": "l2", "edge": "high", "to": [0.01, 1.0]},
    )  # fmt: skip
    same = Finding(
        "loss_curve", "warn", "flat", "", "Raise --lr.", {"phase": "finetune"},
        {"op": "raise", "param": "lr", "from": 0.01, "to": 0.01},
    )  # fmt: skip
    findings, diagnosis = reconcile([widen, lower, same], SETTINGS)
    assert diagnosis["cause"] == "finding" and diagnosis["check"] == "edge_of_range"
    actions = [f.action for f in findings if f.action]
    assert len(actions) == 1 and actions[0]["op"] == "widen"  # no "lower L2" beside "widen"
    assert findings[2].action is None  # a move to the value in use is no advice
    # The finding whose opposite move was dropped says so: its prose is never read alone.
    assert findings[1].evidence["overruled_by"] == "edge_of_range"
    assert "overruled_by" not in findings[2].evidence
    assert "edge_of_range moves the same setting the other way" in format_findings(findings)
    # A stale action (written from another value) that lands on the run's value claims nothing:
    # the next finding's move of that setting stands.
    stale = Finding(
        "underfitting", "warn", 0.5, "", "Wider.", {},
        {"op": "raise", "param": "head_units", "from": 128, "to": 256},
    )  # fmt: skip
    wider = Finding(
        "generalization_gap", "warn", 0.2, "", "Wider.", {},
        {"op": "raise", "param": "head_units", "from": 256, "to": 512},
    )  # fmt: skip
    findings, _ = reconcile([stale, wider], {**SETTINGS, "head_units": 256})
    assert findings[0].action is None and findings[1].action["to"] == 512


def test_wrong_labels_come_before_weak_features_and_a_healthy_run_says_so():
    labels = Finding(
        "label_noise", "warn", "about 20%", "", "Some training labels are likely wrong.",
        {"cause": "noisy_labels", "noise": {"rate": 0.2, "low": 0.13, "high": 0.27},
         "suspects_total": 40},
    )  # fmt: skip
    weak = Finding("lr_range", "warn", "flat", "", "Falls little.", {"cause": "features"})
    under = Finding("underfitting", "warn", 0.62, "", "Add capacity.", {})
    findings, diagnosis = reconcile([weak, labels, under], SETTINGS)
    assert diagnosis["cause"] == "wrong_labels"
    assert "about 20% (13%–27%)" in diagnosis["sentence"]
    assert diagnosis["actions"] == ["review the 40 labels worth a second look"]
    # Some wrong labels hold the training accuracy down; they do not explain the sweep.
    assert findings[2].status == "ok" and findings[2].evidence["explained_by"] == "label_noise"
    assert findings[0].status == "warn"
    # Most labels wrong (shuffled) explain everything the model learned, the sweep included.
    shuffled = Finding("label_noise", "fail", "at chance", "", "Do not match.", {"cause": "labels"})
    findings, diagnosis = reconcile([weak, shuffled], SETTINGS)
    assert diagnosis["cause"] == "wrong_labels" and findings[0].status == "ok"
    # A loss that did not move at this rate comes before some wrong labels: no label fix moves it.
    flat = Finding(
        "loss_flat", "warn", 0.005, "", "The training loss barely moved: the rate is too low. "
        "Raise --lr 10×.", {"phase": "head"},
        {"op": "raise", "param": "lr", "from": 0.01, "to": 0.1},
    )  # fmt: skip
    findings, diagnosis = reconcile([labels, flat], SETTINGS)
    assert diagnosis["check"] == "loss_flat" and diagnosis["actions"] == ["--lr 0.1"]
    assert diagnosis["sentence"] == (
        "The training loss barely moved: the rate is too low (see loss_flat)."
    )
    _, healthy = reconcile([Finding("lr_range", "ok", "window", "", "Nothing to do.")])
    assert healthy["cause"] is None and healthy["sentence"].startswith("Nothing to fix")


@pytest.mark.parametrize(
    ("strength", "flip", "named"),
    [(0.15, 0.0, False), (0.3, 0.2, True)],
    ids=["weak features, clean labels", "good features, 20% flipped"],
)
def test_check_json_names_labels_only_when_it_can_judge_them(
    tmp_path, babysitter_home, strength, flip, named
):
    """The issue's reproduction, through the CLI on generated image files: weak features and
    clean labels name none and say why; good features and flipped labels name them (the listed
    ones are misfiled), and the diagnosis is one sentence naming the root cause."""
    root, misfiled = make_mixed_folder(
        tmp_path / "data", ["red", "green", "blue"], 60, 30, strength, flip=flip
    )
    args = ["check", str(root), "--backbone", "VGG16", "--weights", "none", "--image-size", "32"]
    done = run_cli(*args, "--json", home=babysitter_home)
    assert done.returncode in (0, 1), done.stderr
    payload = json.loads(done.stdout)
    noise = next(f for f in payload["findings"] if f["check"] == "label_noise")
    evidence = noise["evidence"]
    diagnosis = payload["diagnosis"]
    assert diagnosis["sentence"].count(". ") == 0 and len(diagnosis["actions"]) <= 2
    if not named:
        assert evidence["suspects"] == [] and evidence["suspects_total"] == 0
        assert evidence["suspects_reason"].startswith("No single label is named")
        assert noise["status"] != "fail"
        assert diagnosis["cause"] in (None, "weak_features")
    else:
        listed = [s["file"] for s in evidence["suspects"]]
        assert listed and sum(f in misfiled for f in listed) >= 0.8 * len(listed)
        assert evidence["suspects_total"] >= 0.5 * len(misfiled)
        assert diagnosis["cause"] == "wrong_labels" and "Wrong labels" in diagnosis["sentence"]
        text = run_cli(*args, home=babysitter_home).stdout
        assert "Labels worth a second look" in text and "Diagnosis: Wrong labels" in text


def test_an_underfit_head_below_the_rate_window_is_the_rates_doing_not_capacitys():
    settings = {"weights": "imagenet", "lr": 1e-6, "l2": 0.0, "dropout": 0.2, "head_units": 0}
    summary = {"train": {"accuracy": 0.69}, "val": {"accuracy": 0.68}}
    under = underfitting(summary, 2, {**settings, "epochs_finetune": 0})
    assert under.status == "warn" and "Add capacity" in under.advice
    slow = analyse_sweep(RATES, u_curve(), rate=1e-6)  # the loss falls over about [2e-5, 1.5e-2]
    findings, diagnosis = reconcile([under, slow], settings)
    assert diagnosis["cause"] == "rate_below_window" and diagnosis["check"] == "lr_range"
    assert diagnosis["sentence"].startswith("Learning rate too low: the head's rate 1e-06")
    assert diagnosis["actions"] == [f"--lr {slow.action['to']:g}"]
    assert diagnosis["explains"] == ["underfitting"]
    assert findings[0].status == "ok" and findings[0].action is None  # no "add capacity"
    assert findings[0].advice.startswith("Explained by lr_range")
    # Inside the window the rate is not the cause: capacity is.
    inside = analyse_sweep(RATES, u_curve(), rate=1e-3)
    _, diagnosis = reconcile([under, inside], {**settings, "lr": 1e-3})
    assert diagnosis["check"] == "underfitting"
    # A fine-tuning finding is not the head rate's doing.
    curve = Finding("loss_curve", "warn", "flat", "", "Flat.", {"phase": "finetune"})
    _, diagnosis = reconcile([curve, slow], settings)
    assert diagnosis["cause"] == "finding"
