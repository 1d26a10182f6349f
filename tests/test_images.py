"""Decoding real image files of every awkward kind into upright 8-bit RGB, or a clear error."""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from training.data import images
from training.data.images import image_size, load_rgb, open_rgb
from training.errors import ConfigError, ImageError

RED, BLUE = (255, 0, 0), (0, 0, 255)


def solid(mode: str, colour, size=(8, 8)) -> Image.Image:
    return Image.new(mode, size, colour)


def centre(array: np.ndarray) -> tuple[int, ...]:
    h, w, _ = array.shape
    return tuple(int(v) for v in array[h // 2, w // 2])


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "BMP", "WEBP", "TIFF", "GIF"])
def test_every_allowed_format_decodes_to_rgb_uint8(tmp_path, fmt):
    path = tmp_path / f"red.{fmt.lower()}"
    solid("RGB", RED, (10, 6)).save(path, fmt)
    array = load_rgb(path)
    assert array.dtype == np.uint8 and array.shape == (6, 10, 3)
    assert np.abs(array.astype(int) - RED).max() <= 3


def test_resize_squashes_to_square_with_bilinear(tmp_path):
    path = tmp_path / "wide.png"
    solid("RGB", BLUE, (40, 10)).save(path)
    array = load_rgb(path, size=16)
    assert array.shape == (16, 16, 3) and array.flags.writeable
    assert centre(array) == BLUE


def test_bytes_and_file_objects_are_sources(tmp_path):
    buffer = io.BytesIO()
    solid("RGB", RED).save(buffer, "PNG")
    assert centre(load_rgb(buffer.getvalue())) == RED
    buffer.seek(0)
    assert centre(load_rgb(buffer)) == RED


@pytest.mark.parametrize("size", [0, -3, 2.5, True])
def test_bad_size_is_a_config_error(tmp_path, size):
    path = tmp_path / "a.png"
    solid("RGB", RED).save(path)
    with pytest.raises(ConfigError, match="size"):
        load_rgb(path, size=size)


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("notes.jpg", b"these are my holiday notes, not a photo\n" * 10),
        (
            "logo.svg",
            b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" '
            b'height="10"><rect width="10" height="10" fill="red"/></svg>',
        ),
        ("scan.pdf", b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << >>\n%%EOF\n"),
    ],
)
def test_files_that_are_not_images_are_refused_with_advice(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ImageError) as info:
        load_rgb(path)
    message = str(info.value)
    assert str(path) in message
    assert "not an image Pillow can decode" in message
    assert "convert it to JPEG or PNG or remove it" in message


def test_truncated_jpeg_is_an_error_not_grey_pixels(tmp_path):
    noise = np.random.default_rng(0).integers(0, 255, (128, 128, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noise).save(buffer, "JPEG", quality=95)
    path = tmp_path / "cut.jpg"
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(ImageError, match="truncated") as info:
        load_rgb(path)
    assert info.value.path == str(path)


def test_missing_file_is_an_image_error(tmp_path):
    with pytest.raises(ImageError, match="not found"):
        load_rgb(tmp_path / "nope.png")


def test_image_over_our_pixel_limit_is_an_error(tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    solid("RGB", RED, (20, 20)).save(path)
    monkeypatch.setattr(images, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(ImageError, match="over the limit of 100"):
        load_rgb(path)


@pytest.mark.parametrize("side", [12, 20])  # 144: Pillow warns; 400 (> 2×): Pillow raises
def test_pillow_decompression_bomb_warning_becomes_an_error(tmp_path, monkeypatch, side):
    path = tmp_path / "bomb.png"
    solid("RGB", RED, (side, side)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ImageError, match="decompression bomb"):
            load_rgb(path)
    assert not [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)]


def test_animated_gif_gives_its_first_frame(tmp_path):
    path = tmp_path / "anim.gif"
    frames = [solid("RGB", RED), solid("RGB", (0, 255, 0)), solid("RGB", BLUE)]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=50, loop=0)
    assert Image.open(path).n_frames == 3
    assert centre(load_rgb(path)) == RED


def test_animated_webp_gives_its_first_frame(tmp_path):
    path = tmp_path / "anim.webp"
    frames = [solid("RGB", BLUE), solid("RGB", RED)]
    frames[0].save(path, save_all=True, append_images=frames[1:], lossless=True, duration=50)
    assert centre(load_rgb(path)) == BLUE


def test_transparency_is_composited_on_white(tmp_path):
    rgba = np.zeros((4, 3, 4), dtype=np.uint8)
    rgba[0] = (255, 0, 0, 0)  # fully transparent red → white
    rgba[1] = (0, 0, 255, 255)  # opaque blue
    rgba[2] = (0, 0, 0, 128)  # half transparent black → mid grey
    rgba[3] = (0, 255, 0, 255)
    path = tmp_path / "alpha.png"
    Image.fromarray(rgba, "RGBA").save(path)
    array = load_rgb(path)
    assert tuple(array[0, 0]) == (255, 255, 255)
    assert tuple(array[1, 0]) == BLUE
    assert all(abs(int(v) - 127) <= 1 for v in array[2, 0])
    assert tuple(array[3, 0]) == (0, 255, 0)


def test_greyscale_with_alpha_is_composited_on_white(tmp_path):
    path = tmp_path / "la.png"
    Image.new("LA", (4, 4), (0, 0)).save(path)
    assert centre(load_rgb(path)) == (255, 255, 255)


def test_palette_images_with_and_without_transparency(tmp_path):
    palette = Image.new("P", (4, 4), 1)
    palette.putpalette([0, 0, 0, 255, 0, 0, 0, 0, 255] + [0] * (256 * 3 - 9))
    plain = tmp_path / "plain.png"
    palette.save(plain)
    assert centre(load_rgb(plain)) == RED
    see_through = tmp_path / "see_through.png"
    palette.save(see_through, transparency=1)
    assert centre(load_rgb(see_through)) == (255, 255, 255)
    gif = tmp_path / "transparent.gif"
    palette.save(gif, transparency=1)
    assert centre(load_rgb(gif)) == (255, 255, 255)


def test_greyscale_and_bilevel_become_grey_rgb(tmp_path):
    grey = tmp_path / "grey.png"
    Image.new("L", (4, 4), 100).save(grey)
    assert centre(load_rgb(grey)) == (100, 100, 100)
    bilevel = tmp_path / "bw.bmp"
    Image.new("1", (4, 4), 1).save(bilevel)
    assert centre(load_rgb(bilevel)) == (255, 255, 255)


def test_cmyk_becomes_rgb(tmp_path):
    path = tmp_path / "cmyk.tif"
    Image.new("CMYK", (4, 4), (0, 255, 255, 0)).save(path)
    assert centre(load_rgb(path)) == RED


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    path = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (16, 16), (255, 255, 0, 0)).save(path, quality=100)
    assert np.abs(np.array(centre(load_rgb(path))) - BLUE).max() <= 3


def test_16_bit_greyscale_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 32768, 65535, 1000]], dtype=np.uint16)
    for suffix in ("png", "tif"):
        path = tmp_path / f"deep.{suffix}"
        Image.fromarray(values).save(path)
        array = load_rgb(path)
        assert array[0, :, 0].tolist() == [0, 128, 255, 4]
        assert (array[..., 0] == array[..., 2]).all()


def test_32_bit_integer_images_over_255_are_treated_as_16_bit(tmp_path):
    path = tmp_path / "int.tif"
    Image.fromarray(np.array([[0, 32768, 65535]], dtype=np.int32)).save(path)
    assert Image.open(path).mode == "I"
    assert load_rgb(path)[0, :, 0].tolist() == [0, 128, 255]
    small = tmp_path / "int_small.tif"
    Image.fromarray(np.array([[0, 100, 255]], dtype=np.int32)).save(small)
    assert load_rgb(small)[0, :, 0].tolist() == [0, 100, 255]


def test_float_images_are_scaled_from_their_range(tmp_path):
    path = tmp_path / "float.tif"
    Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32)).save(path)
    assert load_rgb(path)[0, :, 0].tolist() == [0, 128, 255]


def _png_rgb16(path: Path, pixels: np.ndarray) -> None:
    """A real 16-bit-per-channel RGB PNG (Pillow cannot write one)."""
    height, width, _ = pixels.shape
    raw = b"".join(b"\x00" + pixels[y].astype(">u2").tobytes() for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def test_16_bit_rgb_png_keeps_full_scale(tmp_path):
    path = tmp_path / "rgb16.png"
    _png_rgb16(path, np.array([[[65535, 32768, 0], [0, 0, 65535]]], dtype=np.uint16))
    array = load_rgb(path)
    assert array[0, 0].tolist() == [255, 128, 0]
    assert array[0, 1].tolist() == [0, 0, 255]


@pytest.mark.parametrize(("orientation", "top", "bottom"), [(6, RED, BLUE), (8, BLUE, RED)])
def test_exif_orientation_is_applied_so_photos_are_upright(tmp_path, orientation, top, bottom):
    # Stored sideways as 40 wide × 20 tall: red left half, blue right half.
    stored = Image.new("RGB", (40, 20), BLUE)
    stored.paste(RED, (0, 0, 20, 20))
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "phone.jpg"
    stored.save(path, quality=95, exif=exif.tobytes())
    array = load_rgb(path)
    assert array.shape == (40, 20, 3)  # upright: 20 wide × 40 tall
    assert np.abs(array[5, 10].astype(int) - top).max() <= 12
    assert np.abs(array[34, 10].astype(int) - bottom).max() <= 12
    assert image_size(path) == (20, 40)
    assert open_rgb(path).size == (20, 40)


def test_open_rgb_returns_a_detached_rgb_image(tmp_path):
    path = tmp_path / "a.png"
    solid("RGB", RED).save(path)
    image = open_rgb(path)
    path.unlink()  # the file is closed and not needed any more
    assert image.mode == "RGB" and image.getpixel((1, 1)) == RED
