"""A saved model loads and predicts; export formats follow the backend. Hostile model files
and images are in ``tests/hostile/test_models.py``."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from training.errors import BackendError
from training.export import export_model
from training.model.layers import ClassNames
from training.predict import load_model_file, predict_files

pytestmark = pytest.mark.core


def tiny_model(names=("cat", "dog")) -> keras.Model:
    image = keras.Input((8, 8, 3), dtype="uint8")
    x = keras.layers.Rescaling(1 / 255)(image)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(len(names), activation="softmax")(x)
    return keras.Model(image, ClassNames(list(names), name="class_names")(x))


def test_a_saved_model_loads_and_predicts(tmp_path):
    path = tmp_path / "m.keras"
    model = tiny_model(("chat noir", "Hund ü"))
    model.save(path)
    loaded = load_model_file(path)
    image = tmp_path / "x.png"
    from PIL import Image

    Image.new("RGB", (20, 30), (200, 10, 10)).save(image)
    (result,) = predict_files(loaded, [image], top_k=5)
    assert {p["class"] for p in result["predictions"]} == {"chat noir", "Hund ü"}
    assert sum(p["probability"] for p in result["predictions"]) == pytest.approx(1.0, abs=1e-5)


def test_export_keras_copies_a_loadable_file(tmp_path):
    path = tmp_path / "m.keras"
    tiny_model().save(path)
    out = export_model(str(path), "keras", tmp_path / "out" / "copy.keras")
    assert load_model_file(out).get_layer("class_names").class_names == ["cat", "dog"]


def test_savedmodel_and_tflite_need_tensorflow(tmp_path, monkeypatch):
    path = tmp_path / "m.keras"
    tiny_model().save(path)
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    for fmt in ("savedmodel", "tflite"):
        with pytest.raises(BackendError, match="KERAS_BACKEND=tensorflow"):
            export_model(str(path), fmt)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="needs TensorFlow")
def test_tflite_export_gives_the_same_probabilities(tmp_path):
    import tensorflow as tf  # the test may use TF directly; the product code does not

    path = tmp_path / "m.keras"
    model = tiny_model()
    model.save(path)
    out = export_model(str(path), "tflite")
    interpreter = tf.lite.Interpreter(model_path=str(out))
    interpreter.allocate_tensors()
    x = np.random.default_rng(0).integers(0, 255, (1, 8, 8, 3), dtype=np.uint8)
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    got = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    np.testing.assert_allclose(got, model.predict(x, verbose=0), atol=1e-5)
    saved = export_model(str(path), "savedmodel")
    assert (saved / "saved_model.pb").exists()
