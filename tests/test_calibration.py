"""Calibration: the ECE by hand, temperature scaling that halves it on held-out data, and the
temperature carried by the saved model into ``predict``, the Python API and the summary."""

from __future__ import annotations

import json
import math

import keras
import numpy as np
import pytest

from app.calibration_view import reliability_chart, reliability_frame
from tests.apptest import page
from tests.imagegen import make_image_folder
from tests.test_train import tiny_config
from training import load_model
from training.babysit.calibration import (
    MIN_IMAGES,
    calibrate,
    calibration_line,
    expected_calibration_error,
    fit_temperature,
    reliability_bins,
    softmax,
)
from training.cli import main
from training.config import TrainConfig
from training.data.cache import open_cache
from training.fit.calibrate import set_temperature, temperature_of
from training.fit.two_phase import train
from training.model.classifier import build_head
from training.model.layers import ClassNames, ImagePreprocessing, find_temperature
from training.predict import load_model_file, predict_arrays
from training.store import RunStore


def test_ece_of_known_inputs_matches_the_hand_computation():
    probabilities = np.array([[0.9, 0.1], [0.9, 0.1], [0.38, 0.62], [0.3, 0.7]])
    labels = np.array([0, 1, 1, 1])
    # 0.9 → bin 13 (2 images, 1 right): |0.5 − 0.9|; 0.62 → bin 9: |1 − 0.62|; 0.7 → bin 10.
    expected = (2 * 0.4 + 0.38 + 0.3) / 4
    assert expected_calibration_error(probabilities, labels) == pytest.approx(expected)
    bins = reliability_bins(probabilities, labels)
    assert len(bins) == 15
    filled = {i: (b["count"], b["accuracy"]) for i, b in enumerate(bins) if b["count"]}
    assert filled == {9: (1, 1.0), 10: (1, 1.0), 13: (2, 0.5)}
    assert bins[13]["confidence"] == pytest.approx(0.9)
    assert bins[0]["confidence"] is None and bins[0]["accuracy"] is None
    # Right where it is sure, at chance where it says 50%: calibrated.
    sure = np.array([[1.0, 0.0], [0.5, 0.5], [0.5, 0.5]])
    assert expected_calibration_error(sure, np.array([0, 0, 1])) == pytest.approx(0.0)


def test_fitted_temperature_recovers_the_one_that_drew_the_labels():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(4000, 4)) * 3
    labels = np.array([rng.choice(4, p=p) for p in softmax(logits, 2.5)])
    assert fit_temperature(logits, labels) == pytest.approx(2.5, rel=0.1)
    # Labels drawn from the logits themselves: T = 1 is already the best.
    labels = np.array([rng.choice(4, p=p) for p in softmax(logits)])
    assert fit_temperature(logits, labels) == pytest.approx(1.0, rel=0.1)


def test_too_few_no_mistakes_no_evidence_or_off_keeps_raw_probabilities_and_says_why():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(MIN_IMAGES - 1, 3))
    few = calibrate(logits, np.zeros(MIN_IMAGES - 1, int))
    assert few["temperature"] == 1.0 and few["ece_before"] is None and few["ece_after"] is None
    assert few["calibration"]["status"] == "skipped"
    assert f"only {MIN_IMAGES - 1} validation images" in few["calibration"]["reason"]
    none = calibrate(np.zeros((0, 3)), np.zeros(0, int))
    assert none["calibration"]["reason"].startswith("no validation images")

    logits = rng.normal(size=(40, 3))
    labels = logits.argmax(axis=1)
    perfect = calibrate(logits, labels)
    assert perfect["temperature"] == 1.0 and perfect["ece_before"] is not None
    assert "every validation image is predicted right" in perfect["calibration"]["reason"]

    labels[:5] = (labels[:5] + 1) % 3
    off = calibrate(logits, labels, enabled=False)
    assert off["temperature"] == 1.0 and off["ece_after"] is None
    assert off["ece_before"] == pytest.approx(expected_calibration_error(softmax(logits), labels))
    assert off["calibration"]["status"] == "off"
    line = calibration_line(off)
    assert "--no-calibrate" in line and "kept raw" in line
    # The best T (0.62) beats T = 1 by a likelihood ratio of 3.0: not evidence enough.
    weak = calibrate(logits, labels)
    assert weak["temperature"] == 1.0 and weak["ece_after"] is None
    assert weak["calibration"]["fitted"] == pytest.approx(0.62, abs=0.01)
    assert "ratio statistic of 3.00, under 3.84" in weak["calibration"]["reason"]
    on = calibrate(logits * 0.3, labels)  # the same ranking, far less sure than it is right
    assert on["calibration"]["status"] == "calibrated" and on["temperature"] < 0.5
    assert calibration_line(on).startswith("calibration: expected calibration error")
    assert calibration_line({"val": {}}) is None  # a run from before calibration


def _gaussian_features(rng, means, n):
    labels = np.arange(n) % len(means)
    return (means[labels] + rng.normal(size=(n, means.shape[1]))).astype("float32"), labels


@pytest.mark.core
def test_an_over_confident_head_is_calibrated_on_held_out_data():
    """A linear head trained 500 full-batch steps, no dropout, no L2, on 150 overlapping
    64-d points: it separates them and grows sure of itself (measured: ECE 12% on held-out
    points, T ≈ 2.6). The temperature is fitted on validation, judged on a test set."""
    rng = np.random.default_rng(0)
    means = rng.normal(size=(3, 64)) * 0.3
    x_train, y_train = _gaussian_features(rng, means, 150)
    x_val, y_val = _gaussian_features(rng, means, 300)
    x_test, y_test = _gaussian_features(rng, means, 900)
    head = build_head(64, 3, dropout=0.0, l2=0.0, head_units=0, seed=0)
    head.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
    steps = 500  # one epoch of repeated full batches: Keras' per-epoch cost paid once
    head.fit(
        np.tile(x_train, (steps, 1)),
        np.tile(y_train, steps),
        batch_size=len(x_train),
        epochs=1,
        shuffle=False,
        verbose=0,
    )
    to_logits = keras.Model(head.inputs, head.get_layer("logits").output)
    result = calibrate(to_logits.predict(x_val, verbose=0), y_val)
    assert result["calibration"]["status"] == "calibrated"
    assert result["temperature"] > 1.5  # over-confident: the logits are softened

    raw = head.predict(x_test, verbose=0)
    set_temperature(head, result["temperature"])
    calibrated = head.predict(x_test, verbose=0)
    before = expected_calibration_error(raw, y_test)
    after = expected_calibration_error(calibrated, y_test)
    assert before > 0.05, "the head was meant to be over-confident"
    assert after <= before / 2
    np.testing.assert_array_equal(raw.argmax(axis=1), calibrated.argmax(axis=1))


@pytest.mark.core
def test_temperature_one_leaves_the_head_exactly_as_before():
    """Phase 1, phase 2 and the gate's initial loss ln(classes) see the head unchanged."""
    head = build_head(16, 4, dropout=0.0, l2=0.0, head_units=0, seed=0)
    assert [layer.name for layer in head.layers] == ["logits", "temperature", "probabilities"]
    assert temperature_of(head) == 1.0 and not find_temperature(head).trainable_weights
    x = np.random.default_rng(0).normal(size=(64, 16)).astype("float32")
    logits = keras.Model(head.inputs, head.get_layer("logits").output).predict(x, verbose=0)
    probabilities = head.predict(x, verbose=0)
    np.testing.assert_allclose(probabilities, softmax(logits), atol=1e-6)
    loss = -np.log(probabilities[np.arange(64), np.arange(64) % 4]).mean()
    assert loss == pytest.approx(math.log(4), abs=0.05)


def _labelled_with_mistakes(root):
    """Colour classes with 24 validation images, 3 of them filed under another colour, so the
    validation set holds mistakes whatever the model learns."""
    counts = {"red": 10, "green": 10, "blue": 10}
    data = make_image_folder(root, splits={"train": counts, "val": dict.fromkeys(counts, 8)})
    val = data / "val"
    for source, target in (("red", "green"), ("green", "blue"), ("blue", "red")):
        moved = sorted((val / source).iterdir())[0]
        moved.rename(val / target / f"moved_{moved.name}")
    return data


@pytest.mark.core
def test_train_stores_the_temperature_in_the_model_that_predict_and_the_api_load(tmp_path):
    data = _labelled_with_mistakes(tmp_path / "colours")
    # Phase 1 only (calibration reads whatever the phases left), long enough that the head is
    # clearly miscalibrated on these 24 images (measured: T 2.5 or 20, likelihood ratio ≥ 9.8).
    config = tiny_config(data, epochs_head=30, epochs_finetune=0)
    result = train(config, verbose=0, echo=lambda m: None)
    summary = result.summary
    record = summary["calibration"]
    assert record["status"] == "calibrated" and record["images"] == 24
    assert summary["ece_after"] <= summary["ece_before"] + 1e-9  # on the images it was fitted on
    assert len(record["before"]) == len(record["after"]) == 15
    assert sum(b["count"] for b in record["after"]) == 24
    temperature = summary["temperature"]
    assert temperature != 1.0

    store = RunStore()
    stored = store.get_run(result.run_id).summary
    assert stored["temperature"] == temperature and stored["ece_before"] == summary["ece_before"]
    model = load_model_file(store.artifact(result.run_id, "model"))  # safe_mode=True
    assert temperature_of(model) == pytest.approx(temperature, rel=1e-6)

    saved = np.load(store.artifact(result.run_id, "predictions"))
    images = np.asarray(open_cache(store.cache_dir() / f"images-{saved['cache_key']}").images)
    val = images[saved["rows"]]
    calibrated = predict_arrays(model, val)
    np.testing.assert_allclose(calibrated, saved["probabilities"], atol=1e-5)  # the app's
    api = load_model(result.run_id).probabilities(list(val[:4]))
    np.testing.assert_allclose(api, calibrated[:4], atol=1e-5)
    set_temperature(model, 1.0)
    raw = predict_arrays(model, val)
    np.testing.assert_allclose(calibrated, softmax(np.log(raw), temperature), atol=1e-4)
    assert not np.allclose(calibrated, raw, atol=1e-3)
    # The summary's ECE is the one of the stored predictions.
    labels = saved["labels"]
    assert summary["ece_after"] == pytest.approx(
        expected_calibration_error(saved["probabilities"], labels), abs=1e-5
    )
    assert summary["ece_before"] == pytest.approx(expected_calibration_error(raw, labels), abs=1e-5)


@pytest.mark.core
def test_no_calibrate_keeps_raw_probabilities_and_still_measures(tmp_path, capsys):
    data = _labelled_with_mistakes(tmp_path / "colours")
    argv = ["train", str(data), "--backbone", "MobileNetV2", "--weights", "none"]
    argv += ["--image-size", "32", "--epochs-head", "2", "--epochs-finetune", "0"]
    assert main([*argv, "--batch-size", "8", "--no-calibrate", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["temperature"] == 1.0 and result["ece_after"] is None
    assert 0.0 <= result["ece_before"] <= 1.0
    assert result["calibration"]["status"] == "off"
    store = RunStore()
    assert store.get_run(result["run_id"]).config["calibrate"] is False
    assert temperature_of(load_model_file(store.artifact(result["run_id"], "model"))) == 1.0


@pytest.mark.core
def test_a_model_saved_before_calibration_still_loads_and_predicts(tmp_path):
    """The layout ``train`` saved before the temperature layer existed (logits → softmax),
    around a pooling stand-in for the backbone: it loads safely and predicts with T = 1."""
    fresh = build_head(3, 2, dropout=0.0, l2=0.0, head_units=0, seed=0)
    kept = [layer for layer in fresh.layers if layer.name != "temperature"]
    head = keras.Sequential([keras.Input((3,)), *kept], name="head")
    image = keras.Input((32, 32, 3), dtype="uint8", name="image")
    x = ImagePreprocessing("tf", name="preprocess")(keras.layers.Rescaling(1.0)(image))
    pooled = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(image, ClassNames(["a", "b"])(head(pooled)))
    path = tmp_path / "old.keras"
    model.save(path)

    loaded = load_model_file(path)
    assert find_temperature(loaded) is None and temperature_of(loaded) == 1.0
    pixels = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    probabilities = predict_arrays(loaded, pixels)
    np.testing.assert_allclose(probabilities, predict_arrays(model, pixels), atol=1e-6)
    assert len(load_model(path).predict(list(pixels), top_k=1)) == 3


def _stored_run(tmp_path, babysitter_home, summary: dict) -> str:
    """A completed train run whose summary holds ``summary`` (no model, no predictions)."""
    data = make_image_folder(tmp_path / "pets", {"cat": 2, "dog": 2})
    store = RunStore(babysitter_home)
    config = TrainConfig(data=str(data), backbone="VGG16").to_dict()
    run = store.create_run("train", "VGG16", config, "fp", str(data))
    store.set_status(run.id, "completed", summary={"val": {"accuracy": 0.8}, **summary})
    return run.id


def _over_confident(n: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """Logits 4× too sharp for the labels they drew."""
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(n, 3)) * 8
    return logits, np.array([rng.choice(3, p=p) for p in softmax(logits, 4.0)])


def test_reliability_chart_draws_both_curves_over_non_empty_bins():
    summary = calibrate(*_over_confident())
    frame = reliability_frame(summary["calibration"], summary["temperature"])
    assert set(frame["series"]) == {"raw (T = 1)", f"calibrated (T = {summary['temperature']:.3g})"}
    assert frame["count"].min() >= 1
    assert frame.groupby("series")["count"].sum().tolist() == [200, 200]
    spec = reliability_chart(summary["calibration"], summary["temperature"]).to_dict()
    assert "layer" in spec  # the diagonal and the curves


def test_results_show_the_calibration_before_and_after(tmp_path, babysitter_home):
    summary = calibrate(*_over_confident())
    run_id = _stored_run(tmp_path, babysitter_home, summary)
    at = page("results", run_id=run_id)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["ECE before"] == f"{summary['ece_before']:.1%}"
    assert metrics["ECE after"] == f"{summary['ece_after']:.1%}"
    assert metrics["Temperature"] == f"{summary['temperature']:.3g}"
    assert any("confidence (top class" in c.proto.spec for c in at.get("vega_lite_chart"))


def test_results_say_why_a_run_was_not_calibrated(tmp_path, babysitter_home):
    logits, labels = _over_confident(12)
    run_id = _stored_run(tmp_path, babysitter_home, calibrate(logits, labels))
    at = page("results", run_id=run_id)
    (info,) = [i.value for i in at.info if "Calibration" in i.value]
    assert "only 12 validation images" in info and "raw probabilities" in info
    assert "ECE before" not in {m.label for m in at.metric}
