"""``predict --tta``: the mean of the model over each image and its mirror (and the rotations and
zoom its training augmentation used), from the CLI, ``predict_files`` and the Python API."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
from PIL import Image

from training.api import TrainedModel
from training.cli.parser import main
from training.model.layers import ClassNames, RandomAffine
from training.predict import predict_arrays, predict_files
from training.tta import View, tta_views, view_images

pytestmark = pytest.mark.core


def tiny_model(augmentation: keras.layers.Layer | None = None) -> keras.Model:
    """Position-sensitive (a Dense over every pixel), so a mirror image predicts differently."""
    keras.utils.set_random_seed(0)
    image = keras.Input((8, 8, 3), dtype="uint8")
    x = keras.layers.Rescaling(1 / 255)(image)
    if augmentation is not None:
        x = augmentation(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(
        3, activation="softmax", kernel_initializer=keras.initializers.RandomNormal(stddev=1.0)
    )(x)
    return keras.Model(image, ClassNames(["a", "b", "c"], name="class_names")(x))


def images(count: int = 6) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (count, 8, 8, 3), dtype=np.uint8)


def test_tta_is_the_mean_over_the_image_and_its_mirror():
    model, x = tiny_model(), images()
    plain = model.predict(x, verbose=0)
    mirrored = model.predict(x[:, :, ::-1, :], verbose=0)
    assert [v.name for v in tta_views(model)] == ["original", "horizontal flip"]
    got = predict_arrays(model, x, tta=True)
    np.testing.assert_allclose(got, (plain + mirrored) / 2, atol=1e-6)
    assert np.abs(got - plain).max() > 1e-3  # the mirror mattered: a real average
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-5)


def test_the_python_api_averages_the_same_views():
    model, x = tiny_model(), images(4)
    trained = TrainedModel(model, ["a", "b", "c"], 8)
    want = predict_arrays(model, x, tta=True)
    np.testing.assert_allclose(trained.probabilities(list(x), tta=True), want, atol=1e-6)
    assert trained.predict(list(x), top_k=1, tta=True)[0][0][1] == pytest.approx(want[0].max())


def test_rotations_and_zoom_are_added_only_where_training_used_them():
    augmented = tiny_model(RandomAffine(rotation=0.05, zoom=0.1, name="augmentation"))
    names = [v.name for v in tta_views(augmented)]
    assert names == ["original", "horizontal flip", "rotated +9°", "rotated -9°", "zoomed in 5%"]
    flips_only = tiny_model(RandomAffine(rotation=0.0, zoom=0.0, name="augmentation"))
    assert len(tta_views(flips_only)) == 2


def test_a_view_warps_like_the_training_augmentation():
    x = images(2)
    np.testing.assert_array_equal(view_images(x, View("same")), x)
    np.testing.assert_array_equal(view_images(x, View("flip", flip=True)), x[:, :, ::-1])
    # A quarter turn of a square image is an exact pixel permutation.
    quarter = view_images(x, View("turn", rotation=0.25))
    np.testing.assert_array_equal(quarter, np.rot90(x, k=1, axes=(1, 2)))


def test_predict_files_and_the_cli_name_the_views(tmp_path, capsys):
    model = tiny_model()
    path = tmp_path / "m.keras"
    model.save(path)
    picture = tmp_path / "x.png"
    Image.fromarray(images(1)[0]).save(picture)
    (result,) = predict_files(model, [picture], top_k=3, tta=True)
    assert result["views"] == ["original", "horizontal flip"]
    assert main(["predict", str(path), str(picture), "--tta", "--json"]) == 0
    (printed,) = json.loads(capsys.readouterr().out)
    assert printed["views"] == result["views"]
    assert printed["predictions"][0]["probability"] == pytest.approx(
        result["predictions"][0]["probability"], abs=1e-6
    )
    assert main(["predict", str(path), str(picture), "--tta"]) == 0
    assert "mean over 2 views (original, horizontal flip)" in capsys.readouterr().out
