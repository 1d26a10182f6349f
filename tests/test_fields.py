"""``training.fields.to_argv`` is the inverse of the generated parser: every field, every kind."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from training.config import TrainConfig
from training.fields import add_arguments, from_args, to_argv
from tuner.config import SearchConfig

CHANGED = {
    TrainConfig: {
        "data": "/data/pets",
        "backbone": "VGG16",
        "weights": "none",
        "image_size": 48,
        "batch_size": 7,
        "val_split": 0.3,
        "seed": 5,
        "precision": "float32",
        "jit": "off",
        "devices": 1,
        "origin": "20261207-101500-vgg16-ab12:underfitting",
        "epochs_head": 2,
        "epochs_finetune": 1,
        "unfreeze": "all",
        "lr": 0.003,
        "finetune_lr": 2e-05,
        "l2": 0.0001,
        "dropout": 0.4,
        "head_units": 128,
        "optimizer": "sgd",
        "schedule": "cosine",
        "label_smoothing": 0.1,
        "augment": False,
        "calibrate": False,
        "class_weights": "balanced",
    },
    SearchConfig: {
        "data": "/data/pets",
        "backbones": ["VGG16", "MobileNetV2"],
        "weights": "none",
        "image_size": 64,
        "trials": 6,
        "stages": 3,
        "epochs_head": 2,
        "epochs_finetune": 1,
        "top_k": 1,
        "tuner": "hyperband",
        "space": ["lr=1e-4:1e-2", "optimizer=adam,sgd"],
        "class_weights": "balanced",
    },
}


def parsed(cls, argv: list[str]):
    parser = argparse.ArgumentParser()
    add_arguments(parser, cls)
    return from_args(cls, parser.parse_args(argv))


@pytest.mark.parametrize("cls", [TrainConfig, SearchConfig])
def test_every_field_survives_the_round_trip(cls):
    config = cls(**CHANGED[cls])
    assert parsed(cls, to_argv(config)) == config
    names = {f.name for f in dataclasses.fields(cls) if "help" in f.metadata}
    if cls is TrainConfig:  # the test changes every field, so none is left to its default
        assert names == set(CHANGED[cls])


def test_defaults_are_left_out_unless_asked_and_booleans_use_their_no_flag():
    config = TrainConfig(data="/d", backbone="VGG16", augment=False)
    assert to_argv(config) == ["/d", "--backbone", "VGG16", "--no-augment"]
    assert to_argv(config, always=("batch_size",), only=("backbone", "batch_size")) == [
        "/d",
        "--backbone",
        "VGG16",
        "--batch-size",
        "32",
    ]
