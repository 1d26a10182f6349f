"""Advice relative to the run: moves start from the run's value, stay in bounds, and render."""

from __future__ import annotations

import pytest

from training.babysit.advice import change, direction, render
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
