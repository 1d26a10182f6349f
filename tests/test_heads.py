"""Head trials on cached features: right answers, no retracing, no memory growth, explosions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from training.fit.schedules import schedule_rate
from tuner.heads import HeadHyperparameters, HeadTrainer

pytestmark = pytest.mark.core


def separable(n: int, dim: int = 32, classes: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    x = rng.normal(0, 1, (n, dim)) + 3 * np.eye(classes, dim)[y]
    return x.astype("float32"), y


@pytest.fixture(scope="module")
def trainer():
    x, y = separable(256)
    vx, vy = separable(96, seed=1)
    return HeadTrainer(x, y, vx, vy, num_classes=3, batch_size=32)


def test_a_head_learns_separable_features(trainer):
    result = trainer.train(HeadHyperparameters(lr=1e-2), epochs=5)
    assert result.val_accuracy > 0.9
    assert len(result.history) == 5
    assert result.history[0]["loss"] > result.history[-1]["loss"]
    assert result.exploded is None


def test_the_first_epoch_of_a_fresh_head_starts_near_ln_classes(trainer):
    result = trainer.train(HeadHyperparameters(lr=1e-6), epochs=1)
    assert result.history[0]["loss"] == pytest.approx(math.log(3), rel=0.05)


def test_a_masked_hidden_layer_trains_like_a_narrow_one(trainer):
    wide = trainer.train(HeadHyperparameters(lr=1e-2, head_units=512), 3, seed=3)
    narrow = trainer.train(HeadHyperparameters(lr=1e-2, head_units=16), 3, seed=3)
    assert trainer.compiled_models <= 2
    model = trainer._model(16, "adam")
    hidden = model.get_layer("hidden")
    assert float(np.abs(hidden.kernel.numpy()[:, 16:]).max()) == 0.0  # dead units stay dead
    assert narrow.val_accuracy > 0.8 and wide.val_accuracy > 0.8


def test_trials_reuse_compiled_models_and_start_fresh(trainer):
    before = trainer.compiled_models
    a = trainer.train(HeadHyperparameters(lr=1e-2, head_units=0, optimizer="adam"), 2, seed=5)
    b = trainer.train(HeadHyperparameters(lr=1e-2, head_units=0, optimizer="adam"), 2, seed=5)
    assert trainer.compiled_models <= before + 1  # same shape: no new model
    # Same seed, same knobs: identical histories, so nothing carried over from the last trial.
    assert a.history[-1]["loss"] == pytest.approx(b.history[-1]["loss"], rel=1e-4)


def test_knobs_that_live_in_variables_change_the_result(trainer):
    plain = trainer.train(HeadHyperparameters(lr=1e-2, l2=0.0), 3, seed=2)
    strong = trainer.train(HeadHyperparameters(lr=1e-2, l2=1.0), 3, seed=2)
    assert strong.history[-1]["loss"] > plain.history[-1]["loss"] + 0.1  # L2 is in the loss


def test_an_exploding_learning_rate_stops_the_trial(trainer):
    result = trainer.train(HeadHyperparameters(lr=1e3, optimizer="sgd"), epochs=10)
    assert result.exploded is not None
    assert len(result.history) < 10
    assert result.exploded["learning_rate"] == pytest.approx(1e3)


def test_memory_does_not_grow_from_trial_to_trial(trainer):
    def rss_mb() -> float:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096 / 2**20

    hps = [
        HeadHyperparameters(
            lr=10 ** -(2 + i % 3), head_units=[0, 128][i % 2], dropout=0.1 * (i % 5)
        )
        for i in range(60)
    ]
    for hp in hps[:10]:
        trainer.train(hp, 2)
    warm, compiled = rss_mb(), trainer.compiled_models
    for hp in hps[10:]:
        trainer.train(hp, 2)
    assert rss_mb() - warm < 30, "50 trials grew the process by 30 MB or more"
    assert trainer.compiled_models == compiled  # 50 trials, not one new compiled model


@pytest.mark.parametrize(
    ("schedule", "epoch", "expected"),
    [
        ("constant", 7, 1.0),
        ("cosine", 0, 1.0),
        ("cosine", 5, 0.5),
        ("step", 5, 0.1),
        ("step", 8, 0.01),
    ],
)
def test_schedules(schedule, epoch, expected):
    assert schedule_rate(schedule, 1.0, epoch, 10) == pytest.approx(expected)
