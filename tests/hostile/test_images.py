"""Hostile and awkward image files in a dataset given to ``audit``: each bad one is reported by
name with why and what to do, and left out; the good ones are kept and the dataset stays
trainable (exit 0); the dataset folder is not touched.

Decoding correctness (pixels of every mode) is unit-tested in ``tests/test_images.py``.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.hostile.conftest import snapshot
from tests.imagegen import make_image_folder
from tests.test_images import _png_rgb16
from training.data import audit

REMOVE = "convert it to JPEG or PNG or remove it"
BOMB = "is over the limit of 64,000,000 (a decompression bomb or a huge scan); downscale it"


def _chunk(kind: bytes, data: bytes) -> bytes:
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))


def header_only_png(width: int, height: int) -> bytes:
    """A valid PNG header declaring ``width``×``height``, with a few bytes of data: a bomb."""
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + _chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + _chunk(b"IEND", b"")
    )


def truncated_jpeg(path: Path) -> None:
    noise = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noise).save(buffer, "JPEG", quality=95)
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])


def over_the_pixel_limit(path: Path) -> None:
    """A real, complete 8001×8001 bilevel PNG (8 KB on disk), one row over the limit."""
    Image.new("1", (8001, 8001)).save(path)


def oversized_file(path: Path) -> None:
    """Over the audit's file-size limit (lowered to 1 MiB by the case, so it stays small)."""
    path.write_bytes(header_only_png(16, 16) + bytes(2 * 1024**2))


BAD = {
    "cut.jpg": (truncated_jpeg, "truncated or corrupt image data", "re-export the file"),
    "empty.jpg": (lambda p: p.write_bytes(b""), "is empty (0 bytes)", "copy it again"),
    "notes.jpg": (
        lambda p: p.write_text("my holiday notes\n" * 20),
        "not an image Pillow can decode (unknown or unsupported format)",
        REMOVE,
    ),
    "logo.png": (
        lambda p: p.write_text('<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"/>'),
        "not an image Pillow can decode",
        REMOVE,
    ),
    "bomb.png": (
        lambda p: p.write_bytes(header_only_png(100_000, 100_000)),
        f"10,000,000,000 pixels {BOMB}",
        "or remove it",
    ),
    "bomb_under_2x.png": (
        lambda p: p.write_bytes(header_only_png(9_000, 9_000)),
        f"81,000,000 pixels {BOMB}",
        "or remove it",
    ),
    "huge.png": (over_the_pixel_limit, f"64,016,001 pixels {BOMB}", "or remove it"),
    "big.png": (oversized_file, "file is 2,097,2", "over 1,048,576; downscale it"),
}


@pytest.fixture
def dataset(tmp_path):
    """Three good 16 px images per class; a case adds its file to ``cat``."""
    return make_image_folder(tmp_path / "data", {"cat": 3, "dog": 3})


def audit_unchanged(cli, folder: Path):
    """``audit`` the folder; the folder is byte for byte as it was."""
    before = snapshot(folder)
    outcome = cli("audit", folder)
    assert snapshot(folder) == before
    return outcome


@pytest.mark.parametrize("name", list(BAD))
def test_a_bad_image_is_reported_by_name_and_left_out(cli, dataset, monkeypatch, name):
    """The six good images are kept and the verdict stays trainable."""
    monkeypatch.setattr(audit, "MAX_FILE_BYTES", 1024**2)
    make, problem, fix = BAD[name]
    make(dataset / "cat" / name)
    outcome = audit_unchanged(cli, dataset)
    assert outcome.code == 0, outcome.out
    (line,) = [line for line in outcome.out.splitlines() if line.startswith(f"    cat/{name}: ")]
    assert problem in line and fix in line
    assert "7 image file(s), 6 readable" in outcome.out
    assert "Verdict: TRAINABLE" in outcome.out
    assert "1 unreadable file(s) will be left out" in outcome.out


def cmyk_jpeg(path: Path) -> None:
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(path, quality=95)


def grey16_png(path: Path) -> None:
    Image.fromarray(np.linspace(0, 65535, 256, dtype=np.uint16).reshape(16, 16)).save(path)


def rgb16_png(path: Path) -> None:
    _png_rgb16(path, np.full((16, 16, 3), 40000, dtype=np.uint16))


def animated_gif(path: Path) -> None:
    frames = [Image.new("RGB", (16, 16), colour) for colour in ("red", "lime", "blue")]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=50, loop=0)


@pytest.mark.parametrize(
    ("name", "make"),
    [
        ("cmyk.jpg", cmyk_jpeg),
        ("grey16.png", grey16_png),
        ("rgb16.png", rgb16_png),
        ("animated.gif", animated_gif),
    ],
)
def test_awkward_but_valid_images_are_kept(cli, dataset, name, make):
    """CMYK, 16-bit and animated files are images: decoded (first frame, 8-bit RGB), not lost."""
    make(dataset / "cat" / name)
    outcome = audit_unchanged(cli, dataset)
    assert outcome.code == 0
    assert "7 image file(s), 7 readable" in outcome.out
    assert "Unreadable files" not in outcome.out and "Skipped files" not in outcome.out


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("photo.heic", "not an image file extension (.heic); images must be JPEG, PNG"),
        ("drawing.svg", "not an image file extension (.svg); images must be JPEG, PNG"),
        ("README", "not an image file extension (none); images must be JPEG, PNG"),
        ("more.tar.gz", "nested archive, not unpacked; unpack it into the folder"),
    ],
)
def test_files_with_other_extensions_are_skipped_naming_them(cli, dataset, name, problem):
    """Never opened: only image extensions are decoded; the rest is listed, with why."""
    (dataset / "cat" / name).write_bytes(b"\x00\x00\x00\x18ftypheic")
    outcome = audit_unchanged(cli, dataset)
    assert outcome.code == 0
    assert f"    cat/{name}: {problem}" in outcome.out
    assert "6 image file(s), 6 readable" in outcome.out


def test_a_named_pipe_called_jpg_is_skipped_not_read(cli, dataset):
    """Reading a FIFO would hang the audit forever; it is listed and never opened."""
    before = snapshot(dataset)  # before the pipe: ``snapshot`` would read it, and wait forever
    os.mkfifo(dataset / "cat" / "pipe.jpg")
    outcome = cli("audit", dataset)
    (dataset / "cat" / "pipe.jpg").unlink()
    assert snapshot(dataset) == before
    assert outcome.code == 0
    assert (
        "    cat/pipe.jpg: not a regular file (a pipe, socket or device); remove it" in outcome.out
    )


def test_a_class_of_only_bad_images_makes_the_dataset_untrainable(cli, dataset):
    """Every file of ``dog`` unreadable: one class left, exit 2, each file still named."""
    for path in (dataset / "dog").iterdir():
        path.write_bytes(path.read_bytes()[:40])
    outcome = audit_unchanged(cli, dataset)
    assert outcome.code == 2
    assert "3 unreadable file(s) will be left out" in outcome.out
    assert "only one class ('cat') has readable images" in outcome.out
    assert outcome.out.count("    dog/img_") == 3
