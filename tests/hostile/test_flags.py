"""Flags out of range or of the wrong kind: refused before anything is recorded.

No run, job or folder may be created for a command that is refused, so each case compares a
snapshot of the whole test folder (data and home) before and after.
"""

from __future__ import annotations

import pytest

from tests.hostile.conftest import snapshot
from tests.imagegen import make_image_folder
from tests.test_predict_export import tiny_model

BASE = ("--backbone", "MobileNetV2", "--weights", "none", "--image-size", "32")

TRAIN_FLAGS = {
    "negative head epochs": (("--epochs-head", "-1"), "--epochs-head"),
    "zero learning rate": (("--lr", "0"), "--lr"),
    "negative learning rate": (("--lr", "-0.1"), "--lr"),
    "nan learning rate": (("--lr", "nan"), "--lr"),
    "infinite fine-tune rate": (("--finetune-lr", "inf"), "--finetune-lr"),
    "negative l2": (("--l2", "-1"), "--l2"),
    "dropout of 1.5": (("--dropout", "1.5"), "--dropout"),
    "image size 0": (("--image-size", "0"), "--image-size"),
    "image size 100000": (("--image-size", "100000"), "--image-size"),
    "batch size 0": (("--batch-size", "0"), "--batch-size"),
    "val split 1": (("--val-split", "1"), "--val-split"),
    "unfreeze -3": (("--unfreeze", "-3"), "--unfreeze"),
    "unknown backbone": (("--backbone", "NoSuchNet"), "NoSuchNet"),
    "weights file missing": (("--weights", "missing.weights.h5"), "missing.weights.h5"),
    "devices 0": (("--devices", "0"), "--devices"),
}

SEARCH_FLAGS = {
    "zero trials": (("--trials", "0"), "--trials"),
    "zero stages": (("--stages", "0"), "--stages"),
    "top-k -1": (("--top-k", "-1"), "--top-k"),
    "unknown tuner": (("--tuner", "grid"), "grid"),
    "space with a bad range": (("--space", "lr=1e-2:1e-4"), "lr"),
    "space with an unknown name": (("--space", "momentum=0.9"), "momentum"),
    "space without a value": (("--space", "lr="), "lr"),
    "space that is not a number": (("--space", "dropout=lots"), "dropout"),
    "space with an unknown choice": (("--space", "optimizer=adam,rmsprop2"), "rmsprop2"),
    "space without =": (("--space", "lr"), "--space"),
}


def refused(cli, tmp_path, argv, named, tool="training"):
    """The command exits non-zero naming ``named`` and leaves every file as it was."""
    before = snapshot(tmp_path)
    result = cli(*argv, tool=tool)
    assert result.code != 0
    assert named in result.err, result.err
    assert snapshot(tmp_path) == before  # no run, job or folder recorded
    return result


@pytest.fixture
def data(tmp_path):
    return make_image_folder(tmp_path / "data", {"cat": 4, "dog": 4}, size=16)


@pytest.mark.parametrize("case", sorted(TRAIN_FLAGS))
def test_train_refuses_a_bad_flag_before_recording_anything(cli, tmp_path, data, case):
    flags, named = TRAIN_FLAGS[case]
    refused(cli, tmp_path, ("train", data, *BASE, *flags), named)


@pytest.mark.parametrize("case", sorted(SEARCH_FLAGS))
def test_search_refuses_a_bad_flag_before_recording_anything(cli, tmp_path, data, case):
    flags, named = SEARCH_FLAGS[case]
    refused(cli, tmp_path, ("search", data, *BASE, *flags), named, tool="tuner")


@pytest.mark.parametrize("top_k", ["0", "-5"])
def test_predict_refuses_a_top_k_below_1(cli, tmp_path, top_k):
    model = tmp_path / "m.keras"
    tiny_model().save(model)
    image = next((make_image_folder(tmp_path / "d", {"cat": 1, "dog": 1}) / "cat").iterdir())
    result = refused(cli, tmp_path, ("predict", model, image, "--top-k", top_k), "--top-k")
    assert f"Expected --top-k to be at least 1. Received: {top_k}" in result.err
