"""Coarse → fine stages: the trial plan, narrowing, edge-of-range widening, babysitter actions."""

from __future__ import annotations

import copy
import math

import keras_tuner as kt
import pytest

from training.babysit.findings import Finding
from training.errors import ConfigError
from tuner.space import Range, SearchSpace, default_space
from tuner.stages import apply_actions, next_stage, plan_stages


def trial(score, **values) -> dict:
    return {"hyperparameters": values, "score": score}


def one(rng: Range) -> SearchSpace:
    return SearchSpace([rng])


def decades(rng: Range) -> float:
    return math.log10(rng.high / rng.low)


LR = Range("lr", "float", low=1e-5, high=1e-1, log=True)
DROPOUT = Range("dropout", "float", low=0.0, high=0.7)


# --- the stage plan ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("trials", "stages", "plan"),
    [
        (20, 2, [12, 8]),
        (10, 3, [5, 3, 2]),
        (6, 2, [4, 2]),
        (3, 3, [1, 1, 1]),
        (4, 3, [2, 1, 1]),
        (7, 1, [7]),
        (1, 1, [1]),
    ],
)
def test_the_coarse_stage_gets_the_most_trials(trials, stages, plan):
    assert plan_stages(trials, stages) == plan


def test_every_plan_sums_to_the_trials_with_at_least_one_per_stage_largest_first():
    for stages in range(1, 8):
        for trials in range(stages, 60):
            plan = plan_stages(trials, stages)
            assert len(plan) == stages and sum(plan) == trials and min(plan) >= 1
            assert plan == sorted(plan, reverse=True)


@pytest.mark.parametrize(
    ("trials", "stages", "message"),
    [
        (0, 1, r"--trials to be a positive integer. Received: 0"),
        (-5, 2, r"--trials to be a positive integer. Received: -5"),
        (2, 3, r"--trials \(2\) to be at least --stages \(3\)"),
        (5, 0, r"--stages to be a positive integer. Received: 0"),
        (5.0, 2, r"--trials to be a positive integer. Received: 5.0"),
    ],
)
def test_impossible_plans_name_the_flag(trials, stages, message):
    with pytest.raises(ConfigError, match=message):
        plan_stages(trials, stages)


# --- narrowing -----------------------------------------------------------------------------------


def test_a_log_range_narrows_around_the_top_trials_in_log_space():
    trials = [
        trial(0.9, lr=1e-4),
        trial(0.85, lr=4e-4),
        trial(0.8, lr=2e-4),
        trial(0.3, lr=3e-2),
        trial(0.2, lr=2e-5),
    ]
    space, findings = next_stage(one(LR), trials, top_k=3, stage=2)
    new = space["lr"]
    assert new.log and LR.low <= new.low < 1e-4 and 4e-4 < new.high <= LR.high
    assert decades(new) < decades(LR) / 2
    # symmetric in log units around the top values' log-middle (2e-4), not in linear units
    assert math.sqrt(new.low * new.high) == pytest.approx(2e-4, rel=0.05)
    # half the spread (0.6 decades) on either side: ×2 beyond the lowest and highest top value
    assert new.low == pytest.approx(5e-5, rel=0.02) and new.high == pytest.approx(8e-4, rel=0.02)
    assert [f.status for f in findings] == ["ok"] and findings[0].check == "edge_of_range"


def test_a_single_top_value_keeps_at_least_a_factor_two_either_side():
    space, _ = next_stage(one(LR), [trial(0.9, lr=1e-3)], stage=2)
    assert space["lr"].low == pytest.approx(5e-4, rel=0.01)
    assert space["lr"].high == pytest.approx(2e-3, rel=0.01)


def test_a_linear_range_narrows_in_linear_units():
    trials = [trial(0.9, dropout=0.3), trial(0.8, dropout=0.4), trial(0.7, dropout=0.35)]
    space, findings = next_stage(one(DROPOUT), trials, stage=2)
    new = space["dropout"]
    assert not new.log
    # spread 0.1 → pad max(0.05, 10% of 0.7) = 0.07
    assert (new.low, new.high) == (pytest.approx(0.23), pytest.approx(0.47))
    assert findings[0].status == "ok"


def test_narrowed_bounds_are_rounded_outward_to_three_significant_digits():
    trials = [trial(0.9, lr=1.23456e-3), trial(0.8, lr=3.45678e-3)]
    new = next_stage(one(LR), trials, stage=2)[0]["lr"]
    assert new.low <= 1.23456e-3 and new.high >= 3.45678e-3
    assert float(f"{new.low:.3g}") == new.low and float(f"{new.high:.3g}") == new.high


def test_an_int_range_stays_whole_and_non_empty():
    unfreeze = Range("unfreeze", "int", low=1, high=8)
    trials = [trial(0.9, unfreeze=3), trial(0.8, unfreeze=3)]
    new = next_stage(one(unfreeze), trials, stage=2, names=["unfreeze"])[0]["unfreeze"]
    assert (new.kind, new.low, new.high) == ("int", 2, 4)
    assert isinstance(new.low, int) and isinstance(new.high, int)


@pytest.mark.parametrize(
    ("name", "choices", "top", "kept"),
    [
        ("optimizer", ["adam", "adamw", "sgd"], ["sgd", "adam", "sgd"], ["adam", "sgd"]),
        ("optimizer", ["adam", "adamw", "sgd"], ["adamw", "adamw", "adamw"], ["adamw"]),
        ("head_units", [0, 128, 256, 512], [256.0, 0, 256], [0, 256]),  # JSON may float them
        ("schedule", ["constant", "step"], ["cosine"] * 3, ["constant", "step"]),  # none: keep all
    ],
)
def test_choices_keep_the_values_among_the_top_trials(name, choices, top, kept):
    space = one(Range(name, "choice", choices=choices))
    trials = [trial(1.0 - i / 10, **{name: value}) for i, value in enumerate(top)]
    trials.append(trial(0.1, **{name: choices[-1]}))  # below the top 3: does not count
    assert next_stage(space, trials, top_k=3, stage=2)[0][name].choices == kept


def test_failed_trials_are_left_out():
    trials = [
        trial(None, lr=5e-2),
        trial(math.nan, lr=6e-2),
        trial(0.6, lr=1e-3),
        trial(0.5, lr=2e-3),
    ]
    new = next_stage(one(LR), trials, top_k=3, stage=2)[0]["lr"]
    assert new.high < 5e-2


def test_no_completed_trial_keeps_the_space_and_says_so():
    space = default_space(["VGG16"])
    new, findings = next_stage(space, [trial(None, lr=1.0), trial(None, lr=0.5)], stage=2)
    assert new == space
    assert [(f.check, f.status) for f in findings] == [("stage_results", "warn")]
    assert "0 of 2" in findings[0].measured


def test_finetune_ranges_are_kept_unless_named():
    space = default_space(["VGG16"])
    trials = [trial(0.9 - i / 100, lr=1e-3, unfreeze=2, finetune_factor=0.05) for i in range(3)]
    new = next_stage(space, trials, stage=2)[0]
    assert new["unfreeze"] == space["unfreeze"] and new["lr"] != space["lr"]
    assert new["finetune_factor"] == space["finetune_factor"]
    refit = next_stage(space, trials, stage=2, names=["finetune_factor"])[0]
    assert refit["finetune_factor"] != space["finetune_factor"] and refit["lr"] == space["lr"]


def test_hyperparameters_outside_the_space_are_ignored():
    trials = [trial(0.9, lr=1e-3, **{"tuner/epochs": 3, "tuner/round": 0, "momentum": 0.9})]
    space, _ = next_stage(one(LR), trials, stage=2)
    assert list(space) == ["lr"]


def test_the_same_trials_give_the_same_stage():
    space = default_space(["VGG16", "ResNet50"])
    trials = [
        trial(0.7, lr=1e-3, l2=1e-4, dropout=0.2, optimizer="adam", backbone="VGG16"),
        trial(0.7, lr=3e-3, l2=1e-3, dropout=0.4, optimizer="sgd", backbone="ResNet50"),
        trial(0.6, lr=2e-2, l2=1e-2, dropout=0.6, optimizer="adamw", backbone="VGG16"),
        trial(0.7, lr=1e-4, l2=1e-5, dropout=0.5, optimizer="sgd", backbone="VGG16"),
    ]
    before = copy.deepcopy(trials)
    first = next_stage(space, trials, top_k=3, stage=2)
    second = next_stage(SearchSpace.from_dict(space.to_dict()), trials, top_k=3, stage=2)
    assert first[0].to_dict() == second[0].to_dict()
    assert [f.to_dict() for f in first[1]] == [f.to_dict() for f in second[1]]
    assert trials == before and space == default_space(["VGG16", "ResNet50"])
    assert first[0]["optimizer"].choices == ["adam", "sgd"]  # ties keep the given order: top 3


@pytest.mark.parametrize(
    ("top_k", "trials", "message"),
    [
        (0, [trial(0.5, lr=1e-3)], r"top_k to be a positive integer"),
        (3, [{"score": 0.5}], r"Expected each trial as"),
        (3, ["lr=1e-3"], r"Expected each trial as"),
    ],
)
def test_bad_stage_inputs_are_refused(top_k, trials, message):
    with pytest.raises(ConfigError, match=message):
        next_stage(one(LR), trials, top_k=top_k, stage=2)


# --- the edge of the range -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rng", "values", "edge", "new_low", "new_high"),
    [
        # log ranges: pushed one decade past the edge, the far side narrowed around the top values
        (LR, [1.5e-5, 3e-5, 2e-5], "low", 1e-6, 6e-5),
        (LR, [8e-2, 5e-2, 6e-2], "high", 2.5e-2, 1.0),
        (Range("l2", "float", low=1e-7, high=1e-3, log=True), [1.1e-7, 2e-6], "low", 1e-8, None),
        (Range("lr", "float", low=1e-3, high=0.5, log=True), [0.45, 0.2], "high", None, 1.0),
        # linear ranges: pushed one range width past the edge, inside the hard limits
        (Range("dropout", "float", low=0.2, high=0.5), [0.21, 0.3], "low", 0.0, None),
        (Range("dropout", "float", low=0.0, high=0.5), [0.48, 0.3], "high", None, 0.9),
        (Range("label_smoothing", "float", low=0.0, high=0.1), [0.1, 0.05], "high", None, 0.2),
        (Range("unfreeze", "int", low=2, high=4), [4, 3], "high", None, 6),
    ],
)
def test_a_best_value_at_an_edge_warns_and_widens_past_it(rng, values, edge, new_low, new_high):
    name = rng.name
    trials = [trial(0.9 - i / 10, **{name: v}) for i, v in enumerate(values)]
    space, findings = next_stage(one(rng), trials, stage=2, names=[name])
    new = space[name]
    (finding,) = findings
    assert isinstance(finding, Finding)
    assert (finding.check, finding.status) == ("edge_of_range", "warn")
    assert name in finding.measured and edge in finding.measured
    assert "optimum may lie outside" in finding.advice and name in finding.advice
    assert finding.evidence == {
        "hyperparameter": name,
        "best": values[0],
        "low": rng.low,
        "high": rng.high,
        "edge": edge,
        "log": rng.log,
        "stage": 2,
        "top_k": len(values),
    }
    assert finding.action == {
        "op": "widen",
        "param": name,
        "edge": edge,
        "low": new.low,
        "high": new.high,
        "to": [new.low, new.high],
    }
    assert new.low < rng.low if edge == "low" else new.high > rng.high
    assert new.contains(values[0]) and new.kind == rng.kind and new.log == rng.log
    if new_low is not None:
        assert new.low == pytest.approx(new_low, rel=0.02)
    if new_high is not None:
        assert new.high == pytest.approx(new_high, rel=0.02)
    assert finding.to_dict()["action"]["op"] == "widen"  # JSON-able for the run store


@pytest.mark.parametrize(
    ("rng", "best"),
    [
        (LR, 1e-3),  # the middle
        (LR, 3e-5),  # 0.48 decades of 4 from the low edge: 12% of the width, not at the edge
        (DROPOUT, 0.0),  # at the edge, but dropout cannot go below 0: nothing lies beyond
        (Range("label_smoothing", "float", low=0.0, high=0.2), 0.01),
        (Range("lr", "float", low=1e-2, high=1.0, log=True), 0.99),  # lr ≤ 1 is a hard limit
        (Range("unfreeze", "int", low=1, high=4), 1),
    ],
)
def test_no_warning_away_from_an_edge_or_at_a_hard_limit(rng, best):
    trials = [trial(0.9, **{rng.name: best})]
    space, findings = next_stage(one(rng), trials, stage=3, names=[rng.name])
    assert [(f.check, f.status) for f in findings] == [("edge_of_range", "ok")]
    assert findings[0].action is None and findings[0].evidence["best"] == {rng.name: best}
    assert rng.low <= space[rng.name].low and space[rng.name].high <= rng.high


def test_one_warning_per_range_at_its_edge_and_the_others_narrow():
    space = default_space(["VGG16"])
    trials = [
        trial(0.9, lr=1.2e-5, l2=1e-4, dropout=0.69, label_smoothing=0.1),
        trial(0.8, lr=1e-4, l2=2e-4, dropout=0.5, label_smoothing=0.1),
    ]
    new, findings = next_stage(space, trials, stage=2)
    assert [(f.status, f.evidence["hyperparameter"], f.evidence["edge"]) for f in findings] == [
        ("warn", "lr", "low"),
        ("warn", "dropout", "high"),
    ]
    assert new["lr"].low == pytest.approx(1e-6) and new["dropout"].high == pytest.approx(0.9)
    assert decades(new["l2"]) < decades(space["l2"])


def test_a_widened_space_registers_and_samples_past_the_old_edge():
    trials = [trial(0.9, lr=1.2e-5), trial(0.8, lr=3e-5)]
    space, _ = next_stage(default_space(["VGG16"]), trials, stage=2)
    hp = kt.HyperParameters()
    space.register(hp)
    (lr,) = [p for p in hp.space if p.name == "lr"]
    samples = [lr.random_sample(seed) for seed in range(200)]
    assert all(space["lr"].low <= s <= space["lr"].high for s in samples)
    assert sum(s < 1e-5 for s in samples) > 40  # the decade below the old range is searched


# --- the babysitter's actions --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "name", "low", "high"),
    [
        ({"op": "narrow", "hyperparameter": "lr", "low": 3e-5, "high": 2e-3}, "lr", 3e-5, 2e-3),
        ({"op": "raise", "hyperparameter": "l2", "factor": 10.0}, "l2", 1e-5, 1.0),
        ({"op": "lower", "hyperparameter": "l2", "factor": 10.0}, "l2", 1e-7, 1e-2),
        ({"op": "lower", "hyperparameter": "lr", "factor": 3.0}, "lr", 3.33e-6, 3.34e-2),
        ({"op": "raise", "hyperparameter": "lr", "factor": 100.0}, "lr", 1e-3, 1.0),  # limit lr≤1
        (
            {"op": "lower", "hyperparameter": "finetune_lr", "factor": 10},
            "finetune_factor",
            1e-3,
            3e-2,
        ),
        ({"op": "raise", "hyperparameter": "dropout", "factor": 10}, "dropout", 0.0, 0.9),
        ({"op": "narrow", "hyperparameter": "unfreeze", "low": 1.5, "high": 2.5}, "unfreeze", 1, 3),
        (
            {"op": "widen", "hyperparameter": "lr", "edge": "low", "low": 1e-6, "high": 1e-3},
            "lr",
            1e-6,
            1e-3,
        ),
    ],
)
def test_actions_move_the_named_range(action, name, low, high):
    space = default_space(["VGG16"])
    new = apply_actions(space, [action])
    assert (new[name].low, new[name].high) == (pytest.approx(low, rel=0.01), pytest.approx(high))
    assert new[name].kind == space[name].kind and new[name].log == space[name].log
    assert space == default_space(["VGG16"])  # the input space is not changed
    assert all(new[n] == space[n] for n in space if n != name)


def test_actions_that_do_not_apply_are_ignored():
    space = default_space(["VGG16"], phase2=False)
    actions = [
        {"op": "unfreeze_more"},
        {"op": "train_longer", "hyperparameter": "epochs_head", "factor": 2.0},
        {"op": "lower", "hyperparameter": "finetune_lr", "factor": 10.0},  # no phase 2 searched
        {"op": "raise", "hyperparameter": "optimizer", "factor": 10.0},  # a choice of names
        {"op": "narrow", "hyperparameter": "momentum", "low": 0.5, "high": 0.9},
        "not an action",
    ]
    assert apply_actions(space, actions) == space
    assert apply_actions(space, []) == space


def test_actions_apply_in_order_and_a_narrow_turns_a_numeric_choice_into_a_range():
    space = SearchSpace([Range("lr", "choice", choices=[1e-3, 1e-2])])
    new = apply_actions(
        space,
        [
            {"op": "narrow", "hyperparameter": "lr", "low": 1e-4, "high": 1e-2},
            {"op": "lower", "hyperparameter": "lr", "factor": 10},
        ],
    )
    assert new["lr"] == Range("lr", "float", low=1e-5, high=1e-3, log=True)


def test_the_sanity_gates_lr_range_is_the_first_stages_range():
    gate = {"op": "narrow", "hyperparameter": "lr", "low": 2e-5, "high": 4e-3}
    assert (
        apply_actions(default_space(["VGG16"]), [gate])["lr"]
        == default_space(["VGG16"], lr_bounds=(2e-5, 4e-3))["lr"]
    )


def test_a_widen_finding_applied_as_an_action_gives_the_next_stages_range():
    trials = [trial(0.9, lr=1.5e-5), trial(0.8, lr=4e-5)]
    space, (finding,) = next_stage(one(LR), trials, stage=2)
    assert apply_actions(one(LR), [finding.action]) == space


@pytest.mark.parametrize(
    ("action", "message"),
    [
        ({"op": "narrow", "hyperparameter": "lr", "low": 1e-2, "high": 1e-4}, r"lr .*low < high"),
        ({"op": "raise", "hyperparameter": "l2", "factor": 0}, r"positive factor .*l2"),
        ({"op": "lower", "hyperparameter": "lr", "factor": "ten"}, r"positive factor .*lr"),
    ],
)
def test_malformed_actions_are_refused_with_the_hyperparameter_named(action, message):
    with pytest.raises(ConfigError, match=message):
        apply_actions(default_space(["VGG16"]), [action])
