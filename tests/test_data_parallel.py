"""Data-parallel training over two virtual CPU devices (JAX), against the same run on one device.

XLA splits one CPU into N virtual devices (``--xla_force_host_platform_device_count``) only if set
before JAX starts, so the runs happen in a separate process (``tests/data_parallel_runs.py``).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import keras
import numpy as np
import pytest

from tests.cli_process import ROOT, cli_env
from tests.imagegen import make_image_folder
from training.data.batches import ImageBatches
from training.errors import ConfigError
from training.fit.parallel import resolve_devices

pytest.importorskip("jax")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """24 training images (whole batches of 4) and 7 validation images (a short last batch)."""
    tmp = tmp_path_factory.mktemp("parallel")
    data = make_image_folder(tmp / "shapes", {"a": 13, "b": 9, "c": 9}, size=32)
    env = {**cli_env(tmp / "home"), "KERAS_BACKEND": "jax"}
    env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
    done = subprocess.run(
        [sys.executable, "-m", "tests.data_parallel_runs", str(data), str(tmp / "home")],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=600,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


@pytest.mark.slow
def test_two_devices_train_the_same_model_as_one(runs):
    single, parallel = runs["one"]["summary"], runs["two"]["summary"]
    assert single["devices"] == 1 and parallel["devices"] == 2
    assert parallel["splits"] == single["splits"] == {"train": 24, "val": 7}
    # The same global batches, gradients averaged over both halves: the same numbers, up to the
    # order of float sums. The short validation batch's padding changes nothing.
    for split in ("train", "val"):
        assert parallel[split]["loss"] == pytest.approx(single[split]["loss"], rel=1e-4)
        assert parallel[split]["accuracy"] == single[split]["accuracy"]
    for mine, theirs in zip(runs["two"]["epochs"], runs["one"]["epochs"], strict=True):
        assert mine["loss"] == pytest.approx(theirs["loss"], rel=1e-4)
        assert mine["val_accuracy"] == pytest.approx(theirs["val_accuracy"], abs=1e-6)
    one, two = np.array(runs["one"]["probabilities"]), np.array(runs["two"]["probabilities"])
    assert one.shape == two.shape == (7, 3)  # exactly the validation rows: padding dropped
    assert np.abs(one - two).max() < 1e-4


@pytest.mark.slow
def test_phase_two_fine_tunes_the_whole_model_across_devices(runs):
    run = runs["two_finetune"]
    assert run["summary"]["devices"] == 2 and run["summary"]["epochs"]["finetune"] == 1
    finetune = [e for e in run["epochs"] if e["phase"] == "finetune"]
    assert finetune and all(math.isfinite(e["loss"]) for e in finetune)
    assert math.isfinite(run["summary"]["val"]["loss"])


@pytest.mark.slow
def test_impossible_device_requests_are_refused_with_the_fix(runs):
    assert "--devices 3" in runs["three"] and "--devices 2 or fewer" in runs["three"]
    assert "--batch-size 5" in runs["odd_batch"] and "--batch-size 6" in runs["odd_batch"]


def test_tensorflow_refuses_data_parallel_and_says_how():
    if keras.backend.backend() != "tensorflow":
        pytest.skip("the refusal is TensorFlow's: JAX runs data-parallel")
    with pytest.raises(ConfigError, match="KERAS_BACKEND=jax"):
        resolve_devices(2)
    assert resolve_devices("auto") == [] and resolve_devices(1) == []


def test_a_short_evaluation_batch_is_padded_with_zero_weight_rows():
    images = np.arange(5 * 2 * 2 * 3, dtype=np.uint8).reshape(5, 2, 2, 3)
    labels = np.array([0, 1, 0, 1, 1])
    batches = ImageBatches(images, labels, np.array([4, 2, 0]), batch_size=2)
    batches.multiple = 2  # as under a two-device DataParallel scope
    x, y, w = batches[1]
    assert len(x) == 2 and list(w) == [1.0, 0.0] and y[0] == labels[0]
    assert list(batches.trim(np.arange(4))) == [0, 1, 2]


def test_a_short_training_batch_is_filled_with_other_real_images():
    images = np.arange(5 * 2 * 2 * 3, dtype=np.uint8).reshape(5, 2, 2, 3)
    labels = np.array([0, 1, 0, 1, 1])
    batches = ImageBatches(images, labels, np.arange(5), batch_size=4, shuffle=True, seed=2)
    batches.multiple = 2
    first, _, _ = batches[0]
    last, y, w = batches[1]
    assert len(y) == 2 and list(w) == [1.0, 1.0]
    assert any((last[1] == image).all() for image in first)  # the filler was seen this epoch
