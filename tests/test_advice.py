"""Advice relative to the run: moves start from the run's value, stay in bounds, and render."""

from __future__ import annotations

import pytest

from training.babysit.advice import change, direction, fresh_action, in_app_words, render
from training.babysit.findings import Finding, format_findings
from training.config import SEARCH_LIMITS

RUN = {
    "weights": "imagenet",
    "lr": 1e-3,
    "l2": 0.0,
    "dropout": 0.2,
    "head_units": 256,
    "unfreeze": None,
    "epochs_head": 10,
}


@pytest.mark.parametrize(
    ("param", "op", "factor", "start", "to"),
    [
        ("lr", "lower", 10.0, 1e-3, 1e-4),
        ("lr", "raise", 3.0, 1e-3, 0.003),
        ("l2", "raise", 10.0, 0.0, 1e-4),  # from 0 a factor means nothing: the first value
        ("dropout", "raise", 10.0, 0.2, 0.4),
        ("dropout", "lower", 10.0, 0.2, 0.1),
        ("head_units", "raise", 2.0, 256, 512),
        ("unfreeze", "raise", 10.0, 2, 3),  # None with pretrained weights means 2
        ("epochs_head", "raise", 2.0, 10, 20),
    ],
)
def test_a_change_starts_from_the_runs_value(param, op, factor, start, to):
    action = change(RUN, param, op, factor)
    assert action == {"op": op, "param": param, "from": start, "to": to}
    assert direction(action) == ("up" if op == "raise" else "down")


def test_no_change_proposes_the_value_in_use_or_one_past_the_limits():
    top = {**RUN, "lr": SEARCH_LIMITS["lr"][1], "head_units": 4096, "dropout": 0.9}
    assert change(top, "lr", "raise") is None
    assert change(top, "head_units", "raise", 2.0) is None
    assert change(top, "dropout", "raise") is None
    assert change(RUN, "l2", "lower") is None  # already 0
    assert change({**RUN, "unfreeze": "all"}, "unfreeze", "raise") is None
    assert change({**RUN, "lr": 2.0}, "lr", "raise") is None  # above the limit already
    assert change({}, "lr", "lower") is None  # the run's value is unknown: no guess


def test_actions_render_as_flags_and_as_form_fields():
    action = change(RUN, "head_units", "raise", 2.0)
    assert render(action) == "--head-units 512"
    assert render(action, style="app") == "Head units: 256 → 512"
    assert render(change({**RUN, "finetune_lr": 1e-4}, "finetune_lr", "lower")) == (
        "--finetune-lr 1e-05"
    )
    window = {"op": "narrow", "param": "lr", "low": 1e-4, "high": 1e-2, "to": [1e-4, 1e-2]}
    assert render(window) == "--space lr=0.0001:0.01"
    assert render(None) == "" and render({"op": "unfreeze_more"}) == ""
    long = {"op": "lower", "param": "lr", "from": 0.00012345678901234567, "to": 1.23e-05}
    assert render(long, style="app") == "Learning rate (phase 1): 0.000123 → 1.23e-05"


@pytest.mark.parametrize(
    ("cli", "app"),
    [
        ("Add capacity: --head-units 512.", "Add capacity: Head units: 256 → 512."),
        ("add capacity (--head-units 256)", "add capacity (Head units already 256)"),
        ("more --l2, more --dropout", "more L2, more Dropout"),
        (
            "keep augmentation on (no --no-augment), or try --no-augment",
            "keep augmentation on, or try augmentation off",
        ),
        (
            "Use --weights none, or --weights PATH.",
            "Use Weights: imagenet → none, or Weights: imagenet → a local weights file.",
        ),
        (
            "Search --space lr=1.23456e-05:0.001.",
            "Search Learning rate (phase 1): search [1.23e-05, 0.001].",
        ),
        (
            "fine-tune the backbone (--epochs-finetune 5)",
            "fine-tune the backbone (Fine-tune epochs: 3 → 5)",
        ),
        ("--dropout 0.4.", "Dropout: 0.2 → 0.4."),
    ],
)
def test_advice_prose_reads_in_the_apps_words(cli, app):
    assert in_app_words(cli, {**RUN, "epochs_finetune": 3}) == app


def test_without_the_runs_values_flags_still_become_field_names():
    assert in_app_words("Use --class-weights balanced.") == "Use Class weights: balanced."
    assert in_app_words("no flags here") == "no flags here"


def test_the_app_never_offers_a_change_the_run_already_uses():
    stale = {"op": "raise", "param": "head_units", "from": 128, "to": 256}
    assert fresh_action(stale, RUN) is None
    assert fresh_action(change(RUN, "head_units", "raise", 2.0), RUN) is not None
    assert fresh_action(stale, None) == stale


def test_the_cli_report_prints_the_flag_to_pass():
    finding = Finding(
        "underfitting",
        "warn",
        0.5,
        "≥ 0.73",
        "Add capacity.",
        action=change(RUN, "head_units", "raise", 2.0),
    )
    assert "→ --head-units 512" in format_findings([finding])
