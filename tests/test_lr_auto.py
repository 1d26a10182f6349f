"""``--lr auto``: the range test's rate trained with, recorded; a fixed rate judged against it."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from tests.imagegen import make_image_folder
from tests.test_lr_range import RATES, u_curve
from training.babysit.findings import Finding
from training.babysit.lr_range import analyse_sweep
from training.cli import main
from training.config import TrainConfig
from training.errors import ConfigError
from training.fields import add_arguments, from_args, to_argv
from training.fit.lr_auto import auto_findings, auto_lines, resolve_auto, underfit_rate
from training.fit.two_phase import train
from training.store import RunStore
from tuner.search import _gate_actions


def config(**values) -> TrainConfig:
    return TrainConfig(**{"data": "unused", "backbone": "VGG16", **values})


def parsed(*argv: str) -> TrainConfig:
    parser = argparse.ArgumentParser()
    add_arguments(parser, TrainConfig)
    return from_args(TrainConfig, parser.parse_args(["unused", "--backbone", "VGG16", *argv]))


def test_auto_is_a_valid_rate_on_the_command_line_and_in_a_config():
    auto = parsed("--lr", "auto", "--finetune-lr", "AUTO")
    assert (auto.lr, auto.finetune_lr, auto.auto_rates) == ("auto", "auto", ("lr", "finetune_lr"))
    assert parsed(*to_argv(auto)[1:]).lr == "auto"  # the app's "train again" command
    assert parsed("--lr", "0.03").lr == 0.03 and parsed().auto_rates == ()
    assert config(lr="Auto").lr == "auto"  # as a config file may spell it
    with pytest.raises(SystemExit):
        parsed("--lr", "fast")
    with pytest.raises(ConfigError, match="--finetune-lr"):
        config(finetune_lr="fast")


def test_auto_takes_the_steepest_fall_and_a_tenth_for_phase_2_and_says_so():
    run = config(lr="auto", finetune_lr="auto")
    finding = analyse_sweep(RATES, u_curve())
    said: list[str] = []
    records = resolve_auto(run, finding, said.append)
    rate, (low, high) = finding.evidence["suggested_rate"], finding.evidence["suggested"]
    assert (run.lr, run.finetune_lr) == (rate, pytest.approx(rate / 10))
    assert records == {
        "lr_auto": {"window": [low, high], "rate": rate},
        "finetune_lr_auto": {"window": [low, high], "rate": pytest.approx(rate / 10)},
    }
    assert finding.evidence["lr_auto"] == records["lr_auto"]
    assert said[0] == f"lr auto → {rate:g} (window {low:.1e} … {high:.1e})"
    assert auto_lines(records) == said
    kept = auto_findings(finding)  # a train run keeps the sweep, its window no longer to move to
    assert [f.check for f in kept] == ["lr_range"] and kept[0].action is None


def test_without_a_window_auto_keeps_the_default_and_says_why():
    run = config(lr="auto")
    flat = analyse_sweep(RATES, np.full(100, 1.1))  # the loss does not move at any rate
    said: list[str] = []
    records = resolve_auto(run, flat, said.append)
    assert run.lr == 1e-3 and run.finetune_lr == 1e-4
    assert records["lr_auto"]["window"] is None and records["lr_auto"]["rate"] == 1e-3
    assert said[0].startswith("lr auto → 0.001, the default: no window where the loss falls")
    assert auto_findings(flat) == []  # a flat sweep does not judge a run that did learn


def test_a_run_that_underfits_at_a_fixed_rate_sweeps_and_keeps_only_a_rate_outside():
    under = [Finding("underfitting", "warn", 0.6, "", "Add capacity.")]
    below = analyse_sweep(RATES, u_curve(), rate=1e-6)
    inside = analyse_sweep(RATES, u_curve(), rate=1e-3)
    assert underfit_rate(under, lambda: below) == [below]
    assert underfit_rate(under, lambda: inside) == []
    assert underfit_rate(under, None) == []  # phase 1 skipped, or the rate was auto

    def never():
        raise AssertionError("a run that does not underfit pays for no sweep")

    assert underfit_rate([Finding("underfitting", "ok", 0.99, "", "")], never) == []
    flat = Finding("loss_flat", "warn", 0.0, "", "Raise --lr.", action={"param": "lr", "to": 1})
    assert underfit_rate([*under, flat], never) == []  # the rate is named already


def test_the_search_takes_the_gates_window_also_when_it_moves_the_gates_rate():
    store = RunStore()
    for rate in (1e-3, 1e-6):  # the newest first: the one below the window
        run = store.create_run("check", "VGG16", {"backbone": "VGG16"}, "f", "data")
        store.add_findings(run.id, [analyse_sweep(RATES, u_curve(), rate=rate)])
    (action,) = _gate_actions(store, "data", ["VGG16"])
    low, high = analyse_sweep(RATES, u_curve()).evidence["suggested"]
    assert action == {"op": "narrow", "param": "lr", "low": low, "high": high}


def test_train_lr_auto_trains_at_the_rate_found_and_records_it(tmp_path, capsys):
    data = make_image_folder(tmp_path / "d", {"red": 10, "green": 10, "blue": 10}, size=32)
    argv = ["train", str(data), "--backbone", "VGG16", "--weights", "none", "--image-size", "32"]
    argv += ["--epochs-head", "1", "--epochs-finetune", "0", "--lr", "auto", "--json"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    record = result["lr_auto"]
    low, high = record["window"]
    assert low <= record["rate"] <= high
    assert f"lr auto → {record['rate']:g} (window {low:.1e} … {high:.1e})" in captured.err
    run = RunStore().get_run(result["run_id"])
    assert run.config["lr"] == record["rate"]  # the number trained with, not "auto"
    assert run.summary["lr_auto"] == record
    (sweep,) = [f for f in result["findings"] if f["check"] == "lr_range"]
    assert sweep["evidence"]["lr_auto"] == record and sweep["action"] is None
    head = [e for e in RunStore().epochs(run.id) if e["phase"] == "head"]
    assert head[0]["lr"] == pytest.approx(record["rate"])  # and trained at it


def test_a_train_run_that_underfits_below_the_window_is_told_the_rate_not_capacity(tmp_path):
    data = make_image_folder(tmp_path / "d", {"red": 16, "green": 16, "blue": 16}, size=32)
    run = config(
        data=str(data), weights="none", image_size=32, epochs_head=2, epochs_finetune=0, lr=1e-5
    )
    result = train(run, verbose=0, echo=lambda m: None)
    diagnosis = result.summary["diagnosis"]
    assert (diagnosis["cause"], diagnosis["check"]) == ("rate_below_window", "lr_range")
    assert diagnosis["explains"] == ["underfitting"]
    (sweep,) = [f for f in result.findings if f["check"] == "lr_range"]
    assert sweep["action"]["op"] == "raise" and sweep["action"]["from"] == 1e-5
    assert diagnosis["actions"] == [f"--lr {sweep['action']['to']:g}"]
    under = next(f for f in result.findings if f["check"] == "underfitting")
    assert under["evidence"]["explained_by"] == "lr_range" and under["action"] is None
