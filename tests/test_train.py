"""End-to-end training on tiny generated images, under whichever Keras backend is active."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.imagegen import make_image_folder
from training.config import TrainConfig
from training.errors import WeightsError
from training.fit import callbacks as callbacks_module
from training.fit.two_phase import train
from training.predict import load_model_file, predict_arrays, predict_files
from training.store import RunStore

pytestmark = pytest.mark.core


def tiny_config(data, **overrides) -> TrainConfig:
    values = dict(
        data=str(data),
        backbone="MobileNetV2",
        weights="none",
        image_size=32,
        batch_size=8,
        epochs_head=3,
        epochs_finetune=2,
        lr=1e-3,  # random MobileNetV2 features are large: 1e-2 blows the head up (3x rule)
        finetune_lr=1e-3,
        seed=1,
    )
    values.update(overrides)
    return TrainConfig(**values)


@pytest.fixture
def colours(tmp_path):
    return make_image_folder(tmp_path / "colours", {"red": 10, "green": 10, "blue": 10}, size=32)


def test_two_phases_store_a_complete_run(colours):
    # VGG16 has no BatchNorm: from random weights its features still carry colour, and a head
    # trained on them separates the classes (the sanity check a user would make too).
    config = tiny_config(
        colours, backbone="VGG16", epochs_head=30, epochs_finetune=2, finetune_lr=1e-4
    )
    result = train(config, verbose=0, echo=lambda m: None)
    store = RunStore()
    run = store.get_run(result.run_id)
    assert run.status == "completed"
    phases = [(e["phase"], e["epoch"]) for e in store.epochs(run.id)]
    assert phases == [("head", i) for i in range(1, 31)] + [("finetune", 1), ("finetune", 2)]
    assert json.loads(store.artifact(run.id, "config").read_text())["backbone"] == "VGG16"
    summary = result.summary
    assert summary["splits"] == {"train": 24, "val": 6}
    assert summary["gap"] == pytest.approx(
        summary["train"]["accuracy"] - summary["val"]["accuracy"]
    )
    # Colour classes are trivial: a model that learned nothing would sit at 33%.
    assert summary["val"]["accuracy"] >= 0.8

    model = load_model_file(store.artifact(run.id, "model"))
    files = [str(colours / "red" / "img_0001.png"), str(colours / "blue" / "img_0021.png")]
    ranked = predict_files(model, files, top_k=2)
    assert [r["predictions"][0]["class"] for r in ranked] == ["red", "blue"]
    assert len(ranked[0]["predictions"]) == 2


def test_saved_model_predicts_like_the_trained_one(colours):
    result = train(tiny_config(colours, epochs_finetune=1), verbose=0, echo=lambda m: None)
    store = RunStore()
    saved = np.load(store.artifact(result.run_id, "predictions"))
    model = load_model_file(store.artifact(result.run_id, "model"))
    from training.data.cache import open_cache

    cache = open_cache(store.cache_dir() / f"images-{saved['cache_key']}")
    again = predict_arrays(model, np.asarray(cache.images[saved["rows"]]))
    np.testing.assert_allclose(again, saved["probabilities"], atol=1e-5)
    assert list(saved["class_names"]) == ["blue", "green", "red"]


def test_batchnorm_statistics_describe_the_data_when_trained_from_scratch(colours):
    """Training images scored in inference mode must score like fit saw them (no BN mismatch).

    Without re-estimated statistics MobileNetV2 (momentum 0.999) scores these at chance (33%)
    while fit reports ~100%.
    """
    config = tiny_config(
        colours, epochs_head=0, epochs_finetune=8, batch_size=16, val_split=0.0, augment=False
    )
    result = train(config, verbose=0, echo=lambda m: None)
    fit_accuracy = RunStore().epochs(result.run_id)[-1]["accuracy"]
    inference_accuracy = result.summary["train"]["accuracy"]
    assert fit_accuracy >= 0.7
    assert inference_accuracy >= 0.7
    assert inference_accuracy >= fit_accuracy - 0.15


def test_killed_run_resumes_where_it_stopped(colours, monkeypatch):
    original = callbacks_module.RunLogger.on_epoch_end

    def stop_after_first_finetune_epoch(self, epoch, logs=None):
        original(self, epoch, logs)
        if self.phase == "finetune" and epoch == 0:
            raise KeyboardInterrupt

    monkeypatch.setattr(callbacks_module.RunLogger, "on_epoch_end", stop_after_first_finetune_epoch)
    config = tiny_config(colours, epochs_head=1, epochs_finetune=3)
    with pytest.raises(KeyboardInterrupt):
        train(config, verbose=0, echo=lambda m: None)
    store = RunStore()
    (interrupted,) = store.list_runs()
    assert interrupted.status == "interrupted"

    monkeypatch.setattr(callbacks_module.RunLogger, "on_epoch_end", original)
    messages: list[str] = []
    result = train(config, verbose=0, echo=messages.append)
    assert result.run_id == interrupted.id
    assert any("Resuming" in m for m in messages)
    assert any("Phase 1 already finished" in m for m in messages)
    finetune = [e["epoch"] for e in store.epochs(result.run_id) if e["phase"] == "finetune"]
    assert finetune == [1, 2, 3]
    assert store.get_run(result.run_id).status == "completed"


def test_imagenet_download_failure_names_the_alternatives(colours, monkeypatch):
    import keras

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(keras.utils, "get_file", offline)
    monkeypatch.setattr("keras.src.utils.file_utils.get_file", offline, raising=False)
    with pytest.raises(WeightsError) as error:
        train(tiny_config(colours, weights="imagenet"), verbose=0, echo=lambda m: None)
    assert "--weights none" in str(error.value)
    assert "--weights PATH" in str(error.value)


def test_local_weights_file_is_used(colours, tmp_path):
    from training.model.backbones import get_backbone

    backbone = get_backbone("MobileNetV2").build(32, None)
    path = tmp_path / "mobilenet.weights.h5"
    backbone.save_weights(path)
    result = train(
        tiny_config(colours, weights=str(path), epochs_finetune=0), verbose=0, echo=lambda m: None
    )
    assert result.summary["weights"] == str(path)
