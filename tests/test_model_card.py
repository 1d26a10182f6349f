"""``runs report RUN``: a model card written from a real tiny run's store records."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.imagegen import make_image_folder
from tests.test_train import tiny_config
from training.cli.parser import main
from training.errors import ConfigError
from training.fit.two_phase import train
from training.model_card import MARK, model_card, wilson, write_card
from training.store import RunStore


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One completed train run on a 4:1 imbalanced set (its loss weighted), in a home of its own."""
    root = tmp_path_factory.mktemp("card")
    data = make_image_folder(root / "data", {"red": 40, "blue": 10}, size=32)
    store = RunStore(root / "home")
    config = tiny_config(data, backbone="VGG16", epochs_finetune=0, seed=0)
    result = train(config, store, verbose=0, echo=lambda m: None)
    return store, store.get_run(result.run_id)


def test_the_card_says_what_the_store_holds(trained):
    store, run = trained
    card = model_card(store, run.id)
    assert card.startswith(MARK + "\n# Model card: VGG16 on `data`")
    for heading in (
        "## Data",
        "## Backbone and weights",
        "## Configuration",
        "## Accuracy",
        "## Per-class precision and recall",
        "## Calibration",
        "## Findings and what was done about them",
        "## Learning curve",
        "## Intended use and limits",
    ):
        assert f"\n{heading}\n" in card, heading
    splits = run.summary["splits"]
    assert f"Split sizes (images): train {splits['train']}, val {splits['val']}" in card
    assert "Leakage verdict: **ok**" in card
    assert "Images per class: blue 10, red 40" in card
    assert "none: random initial weights" in card
    assert "python -m training train " in card and "--backbone VGG16" in card
    assert f"Run `{run.id}` (train, completed" in card


def test_per_class_rows_match_the_stored_predictions(trained):
    store, run = trained
    saved = np.load(store.artifact(run.id, "predictions"))
    guesses, labels = saved["probabilities"].argmax(axis=1), saved["labels"]
    card = model_card(store, run.id)
    for index, name in enumerate(str(n) for n in saved["class_names"]):
        truth = labels == index
        recall = np.mean(guesses[truth] == index)
        row = next(line for line in card.splitlines() if line.startswith(f"| `{name}` |"))
        assert row.split(" | ")[1:4:2] == [str(int(truth.sum())), f"{recall:.1%}"], row


def test_what_was_not_measured_says_so_and_what_was_applied_is_named(trained):
    store, run = trained
    summary = run.summary
    card = model_card(store, run.id)
    curve = card.split("## Learning curve\n\n")[1].split("\n")[0]
    assert curve == "Not measured."
    if not isinstance(summary.get("ece_before"), float):
        assert card.split("## Calibration\n\n")[1].startswith("Not measured")
    follow = store.create_run(
        "train", "VGG16", {**run.config, "origin": f"{run.id}:class_balance"}, "f" * 16, run.dataset
    )
    card = model_card(store, run.id)
    assert f"applied in run `{follow.id}` (running)" in card
    assert "loss weighted by inverse class frequency in this run" in card


def test_calibration_and_the_learning_curve_are_read_when_present(trained, monkeypatch):
    store, run = trained
    extra = {
        "ece_before": 0.12,
        "ece_after": 0.03,
        "temperature": 1.8,
        "learning_curve": {
            "verdict": "rising",
            "projections": [{"multiple": 2, "accuracy": 0.9, "low": 0.85, "high": 0.95}],
        },
    }
    patched = type(run)(**{**run.__dict__, "summary": {**run.summary, **extra}})
    monkeypatch.setattr(store, "get_run", lambda _: patched)
    card = model_card(store, run.id)
    assert "12.0% before, 3.0% after temperature scaling" in card
    assert "Temperature (inside the saved model, before the softmax): 1.8" in card
    assert "- verdict: rising" in card and "at 2× the training images: 90.0% (85.0%–95.0%)" in card
    assert "Calibration was not measured" not in card


def test_the_cli_writes_the_card_and_never_replaces_another_file(trained, tmp_path, monkeypatch):
    store, run = trained
    monkeypatch.setenv("BABYSITTER_HOME", str(store.home))
    out = tmp_path / "cards" / "card.md"
    assert main(["runs", "report", run.id, "--output", str(out)]) == 0
    assert out.read_text().startswith(MARK)
    assert main(["runs", "report", run.id, "--output", str(out), "--json"]) == 0  # a card: replaced
    notes = tmp_path / "notes.md"
    notes.write_text("mine\n")
    with pytest.raises(Exception, match="not a model card"):
        write_card("x", notes)
    assert notes.read_text() == "mine\n"
    with pytest.raises(ConfigError, match=r"\.md"):
        write_card("x", tmp_path / "card.txt")


def test_the_cli_prints_the_card_or_its_json(trained, capsys, monkeypatch):
    store, run = trained
    monkeypatch.setenv("BABYSITTER_HOME", str(store.home))
    assert main(["runs", "report", run.id[:15]]) == 0
    assert capsys.readouterr().out.startswith(MARK)
    assert main(["runs", "report", run.id, "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["run_id"] == run.id and printed["path"] is None
    assert printed["card"].startswith(MARK)


def test_a_run_without_a_model_is_refused(trained):
    store, run = trained
    check = store.create_run("check", "VGG16", run.config, "c" * 16, run.dataset)
    store.set_status(check.id, "completed", summary={})
    with pytest.raises(ConfigError, match="no trained model"):
        model_card(store, check.id)
    running = store.create_run("train", "VGG16", run.config, "d" * 16, run.dataset)
    with pytest.raises(ConfigError, match="is running"):
        model_card(store, running.id)


def test_wilson_interval():
    low, high = wilson(0.9, 100)
    assert low == pytest.approx(0.8256, abs=1e-3) and high == pytest.approx(0.9448, abs=1e-3)
    assert wilson(1.0, 10)[1] == 1.0
