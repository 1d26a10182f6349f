"""Plant a fault in a real tiny training run and check that the right finding names it.

Each run trains a head on random-weight VGG16 features of generated colour images (no BatchNorm,
so inference and training agree; seconds per run). A healthy run must raise no warning.
"""

from __future__ import annotations

import shutil

import keras
import numpy as np
import pytest

from tests.imagegen import class_image, make_image_folder
from training.babysit.diagnose import batchnorm_mismatch
from training.config import TrainConfig
from training.errors import TrainingDiverged
from training.fit import train
from training.runs import RunStore


def head_run(data, **overrides):
    values = dict(
        data=str(data),
        backbone="VGG16",
        weights="none",
        image_size=32,
        batch_size=8,
        epochs_head=30,
        epochs_finetune=0,
        lr=1e-2,
        dropout=0.0,
        seed=1,
    )
    values.update(overrides)
    return train(TrainConfig(**values), verbose=0, echo=lambda m: None)


def by_check(findings):
    return {f["check"]: f for f in findings}


def problems(findings):
    return {f["check"]: f["status"] for f in findings if f["status"] != "ok"}


@pytest.fixture
def colours(tmp_path):
    return make_image_folder(tmp_path / "colours", {"red": 16, "green": 16, "blue": 16}, size=32)


@pytest.mark.core
def test_a_healthy_run_raises_no_warning(tmp_path):
    # 65 images a class: 52 train after the split, over the audit's 50 "few images" line.
    data = make_image_folder(tmp_path / "many", {"red": 65, "green": 65, "blue": 65}, size=32)
    result = head_run(data)
    assert problems(result.findings) == {}
    checks = set(by_check(result.findings))
    assert {"loss_explosion", "loss_flat", "generalization_gap", "leakage"} <= checks
    stored = RunStore().findings(result.run_id)
    assert [f["check"] for f in stored] == [f["check"] for f in result.findings]


@pytest.mark.core
def test_a_learning_rate_1000x_too_high_is_stopped_as_an_explosion(colours):
    with pytest.raises(TrainingDiverged) as stopped:
        head_run(colours, lr=1.0 * 1000 / 100, optimizer="adam")  # 10: 1000x the 1e-2 default
    explosion = by_check(stopped.value.findings)["loss_explosion"]
    assert explosion["status"] == "fail"
    assert explosion["evidence"]["learning_rate"] == pytest.approx(10.0)
    assert explosion["action"] == {"op": "lower", "hyperparameter": "lr", "factor": 10.0}
    run = RunStore().get_run(stopped.value.run_id)
    assert run.status == "failed"
    assert "learning rate is too high" in run.error
    epochs = RunStore().epochs(run.id)
    assert len(epochs) < 30  # stopped, not run to the end


def test_a_learning_rate_1000x_too_low_is_flat(colours):
    result = head_run(colours, lr=1e-5, epochs_head=5)
    flat = by_check(result.findings)["loss_flat"]
    assert flat["status"] == "warn"
    assert flat["action"]["op"] == "raise" and flat["action"]["hyperparameter"] == "lr"


def test_shuffled_training_labels_leave_validation_at_chance(tmp_path):
    root = tmp_path / "shuffled"
    rng = np.random.default_rng(0)
    names = ["red", "green", "blue"]
    for split, count in (("train", 20), ("val", 10)):
        for c, name in enumerate(names):
            for i in range(count):
                # Training images land in a random class folder; validation ones in their own.
                label = names[rng.integers(3)] if split == "train" else name
                folder = root / split / label
                folder.mkdir(parents=True, exist_ok=True)
                class_image(c, 100 * (split == "val") + 10 * c + i, 32).save(
                    folder / f"{split}_{c}_{i}.png"
                )
    result = head_run(root, epochs_head=80, lr=3e-2)
    finding = by_check(result.findings)["val_at_chance"]
    assert finding["status"] == "fail", result.summary


def test_l2_so_strong_that_the_model_underfits(colours):
    result = head_run(colours, l2=3.0)
    finding = by_check(result.findings)["underfitting"]
    assert finding["status"] == "warn", result.summary
    assert finding["action"] == {"op": "lower", "hyperparameter": "l2", "factor": 10.0}


def test_images_duplicated_across_splits_are_reported_as_leakage(tmp_path):
    root = make_image_folder(
        tmp_path / "leaky",
        splits={"train": {"red": 12, "green": 12}, "val": {"red": 4, "green": 4}},
        size=32,
    )
    for name in ("red", "green"):
        for source in sorted((root / "train" / name).iterdir())[:3]:
            shutil.copy(source, root / "val" / name / f"copy_{source.name}")
    result = head_run(root, epochs_head=5)
    leakage = by_check(result.findings)["leakage"]
    assert leakage["status"] == "fail"


@pytest.mark.slow
def test_batchnorm_trained_from_scratch_scores_near_chance_in_inference_mode():
    """The issue's case in plain Keras: fit accuracy high, the same images evaluated near chance."""
    keras.utils.set_random_seed(0)
    images = np.stack([np.array(class_image(c, s, 48)) for c in range(3) for s in range(60)])
    labels = np.repeat(np.arange(3), 60)
    model = keras.applications.MobileNetV2(
        weights=None, input_shape=(48, 48, 3), classes=3, alpha=0.35
    )
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    fit = model.fit(images / 127.5 - 1, labels, epochs=10, batch_size=32, verbose=0)
    history = [
        {"epoch": i + 1, "loss": fit.history["loss"][i], "accuracy": fit.history["accuracy"][i]}
        for i in range(10)
    ]
    loss, accuracy = model.evaluate(images / 127.5 - 1, labels, verbose=0)
    summary = {"train": {"accuracy": accuracy, "loss": loss, "images": len(images)}}
    finding = batchnorm_mismatch(history, summary, 3)
    assert history[-1]["accuracy"] > 0.9
    assert finding.status == "fail", (history[-1]["accuracy"], accuracy)
    assert finding.evidence
