"""The search space: ranges, their validation, ``--space`` overrides, and Keras Tuner sampling."""

from __future__ import annotations

import json
import math
from collections import Counter

import keras_tuner as kt
import pytest

from training.errors import ConfigError
from tuner.overrides import parse_overrides
from tuner.space import (
    FINETUNE_HYPERPARAMETERS,
    HEAD_HYPERPARAMETERS,
    HYPERPARAMETERS,
    Range,
    SearchSpace,
    default_space,
)

# --- the default space ---------------------------------------------------------------------------


def test_every_known_name_has_a_meaning_and_is_head_or_finetune():
    assert list(HYPERPARAMETERS) == [*HEAD_HYPERPARAMETERS, *FINETUNE_HYPERPARAMETERS]
    assert all(meaning.strip() for meaning in HYPERPARAMETERS.values())


def test_the_default_space_holds_the_documented_ranges():
    space = default_space(["ResNet50"])
    assert space.to_dict() == {
        "lr": {"name": "lr", "kind": "float", "low": 1e-5, "high": 1e-1, "log": True},
        "l2": {"name": "l2", "kind": "float", "low": 1e-6, "high": 1e-1, "log": True},
        "dropout": {"name": "dropout", "kind": "float", "low": 0.0, "high": 0.7, "log": False},
        "optimizer": {"name": "optimizer", "kind": "choice", "choices": ["adam", "adamw", "sgd"]},
        "schedule": {
            "name": "schedule",
            "kind": "choice",
            "choices": ["constant", "cosine", "step"],
        },
        "head_units": {"name": "head_units", "kind": "choice", "choices": [0, 128, 256, 512]},
        "label_smoothing": {
            "name": "label_smoothing",
            "kind": "float",
            "low": 0.0,
            "high": 0.2,
            "log": False,
        },
        "unfreeze": {"name": "unfreeze", "kind": "int", "low": 1, "high": 4, "log": False},
        "finetune_factor": {
            "name": "finetune_factor",
            "kind": "float",
            "low": 0.01,
            "high": 0.3,
            "log": True,
        },
    }


@pytest.mark.parametrize(
    ("backbones", "phase2", "expected"),
    [
        (["VGG16"], True, [n for n in HYPERPARAMETERS if n != "backbone"]),
        (["VGG16"], False, [n for n in HEAD_HYPERPARAMETERS if n != "backbone"]),
        (["VGG16", "ResNet50"], True, list(HYPERPARAMETERS)),
        (["VGG16", "VGG16"], False, [n for n in HEAD_HYPERPARAMETERS if n != "backbone"]),
    ],
)
def test_backbone_is_searched_only_between_several(backbones, phase2, expected):
    space = default_space(backbones, phase2=phase2)
    assert list(space) == expected
    if "backbone" in space:
        assert space["backbone"].choices == list(dict.fromkeys(backbones))


def test_the_sanity_gates_lr_range_replaces_the_default_one():
    space = default_space(["VGG16"], lr_bounds=(3e-5, 2e-3))
    assert (space["lr"].low, space["lr"].high, space["lr"].log) == (3e-5, 2e-3, True)
    with pytest.raises(ConfigError, match="lr"):
        default_space(["VGG16"], lr_bounds=(2e-3, 3e-5))


def test_no_backbone_is_refused():
    with pytest.raises(ConfigError, match="--backbone"):
        default_space([])


# --- one range -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            dict(name="momentum", kind="float", low=0.5, high=0.99),
            r"Unknown hyperparameter 'momentum'",
        ),
        (
            dict(name="lr", kind="float", low=1e-2, high=1e-4, log=True),
            r"lr .*low < high.*inverted",
        ),
        (dict(name="lr", kind="float", low=1e-3, high=1e-3, log=True), r"lr .*empty"),
        (dict(name="l2", kind="float", low=0.0, high=1e-1, log=True), r"positive low bound for l2"),
        (dict(name="lr", kind="float", low=-1e-3, high=1e-1), r"lr values in \(0"),
        (dict(name="dropout", kind="float", low=0.1, high=0.99), r"dropout values in \[0, 0.95\]"),
        (dict(name="lr", kind="float", low=math.nan, high=1e-1), r"low of lr .*finite"),
        (dict(name="lr", kind="float", low="1e-3", high=1e-1), r"low of lr .*finite"),
        (dict(name="unfreeze", kind="int", low=1.5, high=4), r"low of unfreeze .*whole number"),
        (dict(name="lr", kind="grid", low=1e-3, high=1e-1), r"kind of lr .*Received: 'grid'"),
        (dict(name="optimizer", kind="float", low=0, high=1), r"optimizer .*choice"),
        (dict(name="optimizer", kind="choice", choices=[]), r"at least one choice for optimizer"),
        (
            dict(name="optimizer", kind="choice", choices=["adam", "rmsprop"]),
            r"optimizer 'rmsprop'",
        ),
        (dict(name="schedule", kind="choice", choices=["cosine", "cosine"]), r"more than once"),
        (dict(name="head_units", kind="choice", choices=[0, -8]), r"head_units values in \[0"),
        (dict(name="head_units", kind="choice", choices=[0, "wide"]), r"head_units.*'wide'"),
        (dict(name="optimizer", kind="choice", choices="adam"), r"list of values"),
        (dict(name="lr", kind="choice", low=1e-3, choices=[1e-3]), r"choices, not low"),
    ],
)
def test_bad_ranges_are_refused_with_the_name_and_the_value(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        Range(**kwargs)


@pytest.mark.parametrize(
    ("name", "given", "expected"),
    [
        ("dropout", [0, 0.5], [0.0, 0.5]),  # Keras Tuner's Choice refuses mixed int/float
        ("head_units", [0.0, 128.0], [0, 128]),
        ("lr", [1, 0.1], [1.0, 0.1]),
    ],
)
def test_choice_values_take_the_hyperparameters_own_type(name, given, expected):
    choices = Range(name, "choice", choices=given).choices
    assert choices == expected
    assert [type(c) for c in choices] == [type(c) for c in expected]


def test_a_range_round_trips_through_json():
    for rng in default_space(["A", "B"]).values():
        assert Range.from_dict(json.loads(json.dumps(rng.to_dict()))) == rng
    with pytest.raises(ConfigError, match="Unknown range field"):
        Range.from_dict({"name": "lr", "kind": "float", "low": 1e-3, "high": 1e-1, "step": 2})


@pytest.mark.parametrize(
    ("rng", "default"),
    [
        (Range("lr", "float", low=1e-5, high=1e-1, log=True), 1e-3),
        (Range("dropout", "float", low=0.0, high=0.6), 0.3),
        (Range("unfreeze", "int", low=1, high=4), 2),
        (Range("optimizer", "choice", choices=["sgd", "adam"]), "sgd"),
    ],
)
def test_the_default_is_the_middle_of_the_range_on_its_scale(rng, default):
    assert rng.default == pytest.approx(default)


# --- the space -----------------------------------------------------------------------------------


def test_a_space_iterates_in_the_canonical_order_whatever_the_insertion_order():
    space = SearchSpace()
    space["optimizer"] = Range("optimizer", "choice", choices=["adam"])
    space["lr"] = Range("lr", "float", low=1e-4, high=1e-2, log=True)
    assert list(space) == ["lr", "optimizer"]
    assert SearchSpace.from_dict(json.loads(json.dumps(space.to_dict()))) == space
    assert space.describe() == "lr 0.0001..0.01 (log), optimizer adam"
    with pytest.raises(ConfigError, match="'dropout'"):
        space["dropout"] = Range("l2", "float", low=1e-4, high=1e-2)


def test_a_stored_space_with_a_bad_range_is_refused():
    with pytest.raises(ConfigError, match="lr"):
        SearchSpace.from_dict({"lr": {"kind": "float", "low": 1.0, "high": 0.1, "log": True}})
    with pytest.raises(ConfigError, match="Unknown hyperparameter 'lr_decay'"):
        SearchSpace.from_dict({"lr_decay": {"kind": "float", "low": 0.1, "high": 1.0}})


def test_subsets_split_head_and_finetune_hyperparameters():
    space = default_space(["A", "B"])
    assert list(space.subset(FINETUNE_HYPERPARAMETERS)) == ["unfreeze", "finetune_factor"]
    assert list(space.subset(HEAD_HYPERPARAMETERS)) == list(HEAD_HYPERPARAMETERS)


# --- --space overrides ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ("lr=1e-4:1e-2", Range("lr", "float", low=1e-4, high=1e-2, log=True)),
        ("lr=1e-4:1e-2:linear", Range("lr", "float", low=1e-4, high=1e-2, log=False)),
        (" dropout = 0.1 : 0.5 ", Range("dropout", "float", low=0.1, high=0.5)),
        ("dropout=0.05:0.5:log", Range("dropout", "float", low=0.05, high=0.5, log=True)),
        ("optimizer=adam,sgd", Range("optimizer", "choice", choices=["adam", "sgd"])),
        ("head_units=0,64", Range("head_units", "choice", choices=[0, 64])),
        ("head_units=16:1024:log", Range("head_units", "int", low=16, high=1024, log=True)),
        ("unfreeze=2", Range("unfreeze", "choice", choices=[2])),
        ("unfreeze=1:6", Range("unfreeze", "int", low=1, high=6)),
        ("lr=1e-3:1e4", Range("lr", "float", low=1e-3, high=1e4, log=True)),  # may explode: allowed
        ("backbone=VGG16,ResNet50", Range("backbone", "choice", choices=["VGG16", "ResNet50"])),
    ],
)
def test_overrides_parse_to_ranges(item, expected):
    assert parse_overrides([item]) == {expected.name: expected}


def test_a_later_override_of_the_same_name_wins():
    ranges = parse_overrides(["lr=1e-4:1e-2", "optimizer=sgd", "lr=1e-3:1e-1"])
    assert list(ranges) == ["lr", "optimizer"]
    assert (ranges["lr"].low, ranges["lr"].high) == (1e-3, 1e-1)


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("lr", r"--space 'lr': expected NAME=LOW:HIGH"),
        ("lr=", r"--space 'lr=': expected NAME=LOW:HIGH"),
        ("=1:2", r"--space '=1:2': expected NAME=LOW:HIGH"),
        ("momentum=0.9", r"--space 'momentum=0.9': unknown hyperparameter 'momentum'"),
        ("lr=1e-2:1e-4", r"--space 'lr=1e-2:1e-4': .*low < high"),
        ("lr=fast:1e-2", r"--space 'lr=fast:1e-2': expected a number for lr. Received: 'fast'"),
        ("lr=1e-4:", r"--space 'lr=1e-4:': expected lr=LOW:HIGH"),
        ("lr=1e-4:1e-2:cubic", r"--space 'lr=1e-4:1e-2:cubic': .*log or linear"),
        ("l2=0:1e-2:log", r"--space 'l2=0:1e-2:log': .*positive low bound"),
        ("optimizer=adam,,sgd", r"--space 'optimizer=adam,,sgd': .*no empty item"),
        (
            "optimizer=adam,rmsprop",
            r"--space 'optimizer=adam,rmsprop': unknown optimizer 'rmsprop'",
        ),
        ("optimizer=1:2", r"--space 'optimizer=1:2': expected optimizer as a list of choices"),
        ("unfreeze=1.5:3", r"--space 'unfreeze=1.5:3': .*whole number"),
        ("dropout=0:1.5", r"--space 'dropout=0:1.5': expected dropout values in"),
    ],
)
def test_bad_overrides_name_the_item_and_the_problem(item, message):
    with pytest.raises(ConfigError, match=message):
        parse_overrides(["optimizer=adam", item])


# --- Keras Tuner ---------------------------------------------------------------------------------


def test_register_declares_each_range_on_a_fresh_hyperparameters_object():
    space = default_space(["VGG16", "ResNet50"])
    hp = kt.HyperParameters()
    values = space.register(hp)
    assert list(values) == list(space)
    assert all(space[name].contains(value) for name, value in values.items())
    declared = {p.name: p for p in hp.space}
    assert isinstance(declared["lr"], kt.engine.hyperparameters.Float)
    assert declared["lr"].sampling == "log" and declared["dropout"].sampling == "linear"
    assert (declared["lr"].min_value, declared["lr"].max_value) == (1e-5, 1e-1)
    assert isinstance(declared["unfreeze"], kt.engine.hyperparameters.Int)
    assert declared["head_units"].values == [0, 128, 256, 512]
    assert declared["backbone"].values == ["VGG16", "ResNet50"]


def test_register_returns_a_trials_values_on_a_trials_object():
    space = default_space(["VGG16"])
    hp = kt.HyperParameters()
    space.register(hp)
    hp.values["lr"] = 3e-4
    assert space.register(hp)["lr"] == 3e-4  # same ranges again: Keras Tuner keeps the value


def test_register_refuses_an_object_holding_another_range_under_the_same_name():
    hp = kt.HyperParameters()
    default_space(["VGG16"]).register(hp)
    narrowed = default_space(["VGG16"], lr_bounds=(1e-4, 1e-2))
    with pytest.raises(ValueError, match=r"fresh keras_tuner\.HyperParameters"):
        narrowed.register(hp)
    assert narrowed.register(kt.HyperParameters())["lr"] == pytest.approx(1e-3)


def _random_trials(space: SearchSpace, count: int, seed: int = 7) -> list[dict]:
    hp = kt.HyperParameters()
    space.register(hp)
    oracle = kt.oracles.RandomSearchOracle(
        objective="val_accuracy", max_trials=count, hyperparameters=hp, seed=seed
    )
    return [oracle.populate_space(str(i))["values"] for i in range(count)]


def test_random_search_samples_log_ranges_evenly_over_their_decades():
    space = default_space(["VGG16", "ResNet50"])
    samples = _random_trials(space, 400)
    for values in samples:
        assert all(space[name].contains(value) for name, value in values.items())
    decades = Counter(math.floor(math.log10(v["lr"])) for v in samples)
    assert sorted(decades) == [-5, -4, -3, -2]
    assert min(decades.values()) > 400 / 4 * 0.6  # linear sampling would put 90% in 1e-2..1e-1
    l2_decades = Counter(math.floor(math.log10(v["l2"])) for v in samples)
    assert sorted(l2_decades) == [-6, -5, -4, -3, -2]
    dropouts = [v["dropout"] for v in samples]
    assert sum(d < 0.35 for d in dropouts) == pytest.approx(200, abs=50)  # linear: half below mid
    for name in ("optimizer", "schedule", "head_units", "backbone", "unfreeze"):
        seen = {v[name] for v in samples}
        expected = space[name].choices or range(space[name].low, space[name].high + 1)
        assert seen == set(expected), name


def test_log_sampling_spreads_single_samples_over_decades():
    lr = Range("lr", "float", low=1e-6, high=1e-1, log=True)
    hp = kt.HyperParameters()
    lr.register(hp)
    (declared,) = hp.space
    samples = [declared.random_sample(seed) for seed in range(500)]
    assert all(1e-6 <= s < 1e-1 for s in samples)
    assert len({math.floor(math.log10(s)) for s in samples}) == 5
    assert sum(s < 1e-3 for s in samples) == pytest.approx(300, abs=60)  # 3 of 5 decades
