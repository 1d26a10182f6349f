"""``export --format onnx``: onnxruntime gives the Keras model's probabilities for a Babysitter
classifier (uint8 input, preprocessing, augmentation and class-name layers inside), and the
export keeps ``export``'s never-destroy rules."""

from __future__ import annotations

import importlib.util

import keras
import numpy as np
import pytest

from tests.test_predict_export import tiny_model
from training.errors import BackendError, ExportError
from training.export import export_model
from training.export_onnx import onnx_marked
from training.model.backbones import get_backbone
from training.model.classifier import build_classifier
from training.predict import load_model_file

pytestmark = pytest.mark.core
MISSING = [m for m in ("tf2onnx", "onnx", "onnxruntime") if importlib.util.find_spec(m) is None]
needs_converter = pytest.mark.skipif(
    bool(MISSING) or keras.backend.backend() != "tensorflow",
    reason=f"needs TensorFlow with the [onnx] extra; missing: {MISSING or 'none'}"
    if MISSING
    else "Keras converts to ONNX from the TensorFlow backend here",
)


def classifier_file(tmp_path):
    """A VGG16 classifier at 32 px with every Babysitter layer, saved as a ``.keras`` file. Its
    random weights (no BatchNorm to flatten them) give features that differ from image to
    image; its logits are spread so that the probabilities do too."""
    keras.utils.set_random_seed(0)
    clf = build_classifier(get_backbone("VGG16"), ["ant", "bee", "wasp"], 32, "none", seed=0)
    logits = clf.head.get_layer("logits")
    kernel = np.random.default_rng(0).normal(0, 5.0, logits.kernel.shape)
    logits.kernel.assign(kernel.astype("float32"))
    # Centred on random images' mean features: image-to-image differences decide the class.
    pixels = np.random.default_rng(2).integers(0, 256, (16, 32, 32, 3), dtype=np.uint8)
    mean = clf.features.predict(pixels, verbose=0).mean(axis=0)
    logits.bias.assign((-mean @ kernel).astype("float32"))
    path = tmp_path / "m.keras"
    clf.model.save(path)
    return path


@needs_converter
def test_onnxruntime_predicts_what_keras_predicts(tmp_path):
    import onnxruntime

    path = classifier_file(tmp_path)
    out = export_model(str(path), "onnx", tmp_path / "out" / "model.onnx")
    assert out.suffix == ".onnx" and onnx_marked(out)
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (image_input,) = session.get_inputs()
    assert image_input.type == "tensor(uint8)"
    images = np.random.default_rng(1).integers(0, 256, (20, 32, 32, 3), dtype=np.uint8)
    got = session.run(None, {image_input.name: images})[0]
    want = load_model_file(path).predict(images, verbose=0)
    assert want.std(axis=0).max() > 0.01  # images tell apart: a real comparison
    assert np.abs(got - want).max() <= 1e-4


@needs_converter
def test_force_replaces_only_an_earlier_onnx_export(tmp_path):
    path = tmp_path / "tiny.keras"
    tiny_model().save(path)
    foreign = tmp_path / "theirs.onnx"
    foreign.write_bytes(b"not a model")
    with pytest.raises(ExportError, match="already exists"):
        export_model(str(path), "onnx", foreign)
    with pytest.raises(ExportError, match="is not an ONNX file"):
        export_model(str(path), "onnx", foreign, force=True)
    assert foreign.read_bytes() == b"not a model"  # never destroyed
    ours = export_model(str(path), "onnx", tmp_path / "ours.onnx")
    assert export_model(str(path), "onnx", ours, force=True) == ours


def test_the_suffix_follows_the_format_and_jax_is_sent_to_tensorflow(tmp_path, monkeypatch):
    path = tmp_path / "m.keras"
    path.write_bytes(b"")
    monkeypatch.setattr(keras.backend, "backend", lambda: "tensorflow")
    with pytest.raises(Exception, match=r"end in \.onnx"):
        export_model(str(path), "onnx", tmp_path / "model.keras")
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    with pytest.raises(BackendError, match="KERAS_BACKEND=tensorflow"):
        export_model(str(path), "onnx")


def test_a_missing_converter_says_which_extra_to_install(tmp_path, monkeypatch):
    import training.export_onnx as export_onnx

    real = importlib.util.find_spec
    monkeypatch.setattr(
        export_onnx.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "tf2onnx" else real(name, *a),
    )
    monkeypatch.setattr(keras.backend, "backend", lambda: "tensorflow")
    with pytest.raises(ExportError, match=r"babysitter\[onnx\]"):
        export_model(str(tmp_path / "m.keras"), "onnx")
