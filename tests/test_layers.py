"""Preprocessing and class-name layers: numerics match Keras, and they survive a safe reload."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from training.errors import ConfigError
from training.model.layers import ClassNames, ImagePreprocessing

pytestmark = pytest.mark.core


def _pixels(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(2, 5, 7, 3), dtype=np.uint8)


@pytest.mark.parametrize(
    ("module", "mode"),
    [
        ("vgg16", "caffe"),
        ("resnet50", "caffe"),
        ("mobilenet_v2", "tf"),
        ("inception_v3", "tf"),
        ("densenet", "torch"),
        ("efficientnet", "none"),
    ],
)
def test_matches_keras_preprocess_input(module, mode):
    pixels = _pixels()
    expected = getattr(keras.applications, module).preprocess_input(pixels.astype("float32"))
    layer = ImagePreprocessing(mode)
    for given in (pixels, pixels.astype("float32")):
        got = keras.ops.convert_to_numpy(layer(given))
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, expected, atol=1e-4)


def test_mode_none_only_casts():
    pixels = _pixels(1)
    got = keras.ops.convert_to_numpy(ImagePreprocessing("none")(pixels))
    np.testing.assert_array_equal(got, pixels.astype("float32"))


def test_mixed_bfloat16_policy_casts_the_output():
    pixels = _pixels(2)
    exact = keras.ops.convert_to_numpy(ImagePreprocessing("caffe")(pixels))
    layer = ImagePreprocessing("caffe", dtype="mixed_bfloat16")
    out = layer(pixels)
    assert keras.backend.standardize_dtype(out.dtype) == "bfloat16"
    rounded = keras.ops.convert_to_numpy(keras.ops.cast(out, "float32"))
    np.testing.assert_allclose(rounded, exact, atol=0.5)  # bf16 spacing is 1 above 128


def test_preprocessing_config_round_trip():
    layer = ImagePreprocessing("torch", name="prep")
    clone = ImagePreprocessing.from_config(layer.get_config())
    assert (clone.mode, clone.name) == ("torch", "prep")
    with pytest.raises(ConfigError, match="Received: mode='bgr'"):
        ImagePreprocessing("bgr")


def test_class_names_validation():
    assert ClassNames(["a", "b"]).class_names == ["a", "b"]
    with pytest.raises(ConfigError, match="unique"):
        ClassNames(["a", "a"])
    with pytest.raises(ConfigError, match="non-empty"):
        ClassNames([])
    with pytest.raises(ConfigError, match="3 outputs but 2 class names"):
        ClassNames(["a", "b"])(keras.Input((3,)))
    ClassNames(["neg", "pos"])(keras.Input((1,)))  # one sigmoid unit for two classes


def _tiny_model(names: list[str]) -> keras.Model:
    inputs = keras.Input((8, 8, 3), dtype="uint8")
    x = ImagePreprocessing("caffe")(inputs)
    x = keras.layers.Conv2D(4, 3, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(len(names), activation="softmax")(x)
    return keras.Model(inputs, ClassNames(names)(x))


def test_saved_model_keeps_preprocessing_and_labels(tmp_path):
    names = ["chat", "chien", "妖精", "🐶 dog"]
    model = _tiny_model(names)
    pixels = np.random.default_rng(3).integers(0, 256, size=(3, 8, 8, 3), dtype=np.uint8)
    path = tmp_path / "tiny.keras"
    model.save(path)

    loaded = keras.saving.load_model(path, safe_mode=True)
    assert loaded.get_layer("class_names").class_names == names
    assert isinstance(loaded.layers[1], ImagePreprocessing) and loaded.layers[1].mode == "caffe"
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(loaded(pixels)),
        keras.ops.convert_to_numpy(model(pixels)),
        atol=1e-6,
    )


def test_random_affine_is_identity_at_inference_and_varies_in_training():
    import numpy as np

    from training.model.layers import RandomAffine

    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (4, 16, 16, 3)).astype("float32")
    layer = RandomAffine(seed=3)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(images)), images)
    warped = keras.ops.convert_to_numpy(layer(images, training=True))
    assert warped.shape == images.shape
    assert not np.allclose(warped, images)


def test_random_affine_flip_alone_mirrors_or_keeps_each_image():
    import numpy as np

    from training.model.layers import RandomAffine

    images = np.arange(2 * 8 * 8 * 3, dtype="float32").reshape(2, 8, 8, 3)
    batch = np.concatenate([images] * 8)
    out = keras.ops.convert_to_numpy(
        RandomAffine(rotation=0.0, zoom=0.0, seed=1)(batch, training=True)
    )
    mirrored = 0
    for got, original in zip(out, batch, strict=True):
        if np.allclose(got, original[:, ::-1], atol=1e-3):
            mirrored += 1
        else:
            np.testing.assert_allclose(got, original, atol=1e-3)
    assert 0 < mirrored < len(batch)
