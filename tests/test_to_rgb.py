"""One conversion to RGB everywhere: the images whose modes need care (transparency, a palette,
16 bits, CMYK) give the very same pixels through every way into a model: training's decoder,
the Python API with a path and with a PIL image, ``predict`` and the app's Predict page."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from app.views.predict import predict as app_predict
from training.api import TrainedModel
from training.data.images import load_rgb, to_rgb
from training.predict import predict_files

SIZE = 12
"""The fake model's input size: every image is 24 × 16, so every entry point resizes."""
WHITE = [255, 255, 255]


class Recorder:
    """What ``predict_files`` and ``TrainedModel`` need of a Keras model; keeps the pixels fed."""

    input_shape = (None, SIZE, SIZE, 3)

    def __init__(self) -> None:
        self.seen: list[np.ndarray] = []

    def get_layer(self, name: str) -> SimpleNamespace:
        assert name == "class_names"
        return SimpleNamespace(class_names=["a", "b"])

    def predict(self, images, batch_size: int = 32, verbose: int = 0) -> np.ndarray:
        self.seen.extend(np.array(image) for image in images)
        return np.full((len(images), 2), 0.5, dtype=np.float32)


def transparent_png(folder: Path) -> Path:
    """Left half fully transparent black, a half-transparent blue column, an opaque red rest."""
    pixels = np.zeros((16, 24, 4), dtype=np.uint8)
    pixels[:, 10:14] = (0, 0, 255, 128)
    pixels[:, 14:] = (200, 30, 60, 255)
    path = folder / "transparent.png"
    Image.fromarray(pixels, "RGBA").save(path)
    return path


def palette_gif(folder: Path) -> Path:
    """Palette index 0 (black) is transparent: the left half."""
    image = Image.new("P", (24, 16), 0)
    image.putpalette([0, 0, 0, 220, 20, 20] + [0] * (254 * 3))
    image.paste(1, (12, 0, 24, 16))
    path = folder / "palette.gif"
    image.save(path, transparency=0)
    return path


def sixteen_bit_png(folder: Path) -> Path:
    """A 16-bit greyscale ramp from 0 to 65535: half scale must be mid-grey, not clipped white."""
    ramp = np.linspace(0, 65535, 24).round().astype(np.uint16)
    path = folder / "sixteen.png"
    Image.fromarray(np.tile(ramp, (16, 1))).save(path)
    return path


def cmyk_jpeg(folder: Path) -> Path:
    image = Image.new("CMYK", (24, 16), (0, 200, 200, 0))
    image.paste((180, 0, 40, 30), (12, 0, 24, 16))
    path = folder / "cmyk.jpg"
    image.save(path, quality=95)
    return path


MAKERS = [transparent_png, palette_gif, sixteen_bit_png, cmyk_jpeg]


def entry_points(path: Path) -> dict[str, np.ndarray]:
    """The (SIZE, SIZE, 3) uint8 pixels each way into a model makes of the file at ``path``."""
    got = {"training decoder": load_rgb(path, SIZE)}
    api = Recorder()
    with Image.open(path) as opened:
        TrainedModel(api, ["a", "b"], SIZE).probabilities([str(path), path, opened])
    got["api path (str)"], got["api path (Path)"], got["api PIL image"] = api.seen
    predicted = Recorder()
    (result,) = predict_files(predicted, [path], top_k=1)
    assert "error" not in result, result
    (got["predict_files"],) = predicted.seen
    app = Recorder()
    upload = SimpleNamespace(name=path.name, getvalue=path.read_bytes)
    (shown,) = app_predict(app, [upload], top_k=1)
    assert shown["file"] == path.name and "error" not in shown, shown
    (got["app Predict page"],) = app.seen
    return got


@pytest.mark.parametrize("make", MAKERS, ids=lambda make: make.__name__)
def test_every_entry_point_gives_the_same_pixels(tmp_path, make):
    got = entry_points(make(tmp_path))
    reference = got["training decoder"]
    assert reference.shape == (SIZE, SIZE, 3) and reference.dtype == np.uint8
    for where, pixels in got.items():
        np.testing.assert_array_equal(pixels, reference, err_msg=where)


def test_to_rgb_of_an_opened_image_is_the_decoded_file(tmp_path):
    for make in MAKERS:
        path = make(tmp_path)
        with Image.open(path) as opened:
            converted = to_rgb(opened)
            assert converted is not opened and converted.mode == "RGB"
        np.testing.assert_array_equal(np.asarray(converted), load_rgb(path), err_msg=path.name)


def test_the_pixels_are_those_training_promises(tmp_path):
    """Transparency on white (not black), 16 bits scaled (not clipped), a palette's colours."""
    transparent = load_rgb(transparent_png(tmp_path))
    assert transparent[0, 0].tolist() == WHITE
    assert transparent[0, 12].tolist() == [127, 127, 255]  # 50 % blue over white
    assert transparent[0, 20].tolist() == [200, 30, 60]
    palette = load_rgb(palette_gif(tmp_path))
    assert palette[0, 0].tolist() == WHITE and palette[0, 20].tolist() == [220, 20, 20]
    ramp = load_rgb(sixteen_bit_png(tmp_path))[0, :, 0]
    assert ramp[0] == 0 and ramp[-1] == 255 and 100 < ramp[12] < 156
    assert np.all(np.diff(ramp.astype(int)) >= 0)
