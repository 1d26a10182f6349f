"""The one way an image file becomes RGB pixels: safe, upright, 8-bit, identical everywhere.

Cache building and prediction both decode through :func:`load_rgb`, and every Pillow image
becomes RGB through :func:`to_rgb` (files, bytes and images opened by the caller alike), so a
model sees the same pixels in training and in use. Decoding is strict on purpose: a
decompression bomb, a truncated JPEG or a file that is not really an image is an
:class:`~training.errors.ImageError` that the audit reports, never a warning scrolled past or a
half-grey image trained on.
"""

from __future__ import annotations

import io
import os
import re
import threading
import warnings
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from training.errors import ConfigError, ImageError

IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff"}
)
"""File name endings the scanner treats as images (lowercase, with the dot)."""

MAX_IMAGE_PIXELS: int = 64_000_000
"""Largest width × height decoded (about an 8000 × 8000 photo); larger files are refused."""

# Pillow only warns between 1× and 2× its own limit; we also turn that warning into an error.
Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS

OPEN_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "GIF", "BMP", "WEBP", "TIFF")
"""The only Pillow plugins tried when opening: no SVG/PDF/EPS/ICO or other exotic parsers."""
ALLOWED_FORMATS: frozenset[str] = frozenset({*OPEN_FORMATS, "MPO"})
"""Formats accepted after opening; MPO is the multi-picture JPEG some cameras write."""
Image.init()  # register every plugin now, so ``formats=`` finds WEBP/TIFF on first use

_FIX = "convert it to JPEG or PNG or remove it"
# warnings.catch_warnings() swaps process-wide state, so threads must not interleave inside it.
# Only the cheap header parse (where Pillow's bomb check runs) is under the lock; decoding is not.
_OPEN_LOCK = threading.Lock()

Source = str | os.PathLike | bytes | BinaryIO


def _describe(source: Source) -> str:
    if isinstance(source, bytes | bytearray):
        return "<bytes>"
    if isinstance(source, str | os.PathLike):
        return str(source)
    return str(getattr(source, "name", "<stream>"))


def _stream(source: Source, name: str) -> BinaryIO:
    if isinstance(source, bytes | bytearray):
        return io.BytesIO(source)
    if isinstance(source, str | os.PathLike):
        try:
            return open(source, "rb")  # closed by the caller
        except FileNotFoundError:
            raise ImageError(name, "file not found; check the path") from None
        except IsADirectoryError:
            raise ImageError(name, "is a folder, not an image file") from None
        except OSError as exc:
            raise ImageError(
                name, f"cannot be read ({exc.strerror or exc}); check permissions"
            ) from None
    return source


def _bomb_reason(pixels: int | None, detail: str = "") -> str:
    limit = min(MAX_IMAGE_PIXELS, Image.MAX_IMAGE_PIXELS or MAX_IMAGE_PIXELS)
    size = f"{pixels:,} pixels" if pixels is not None else "too many pixels"
    extra = f" ({detail})" if detail else ""
    return (
        f"{size}{extra} is over the limit of {limit:,} (a decompression bomb or a huge scan); "
        f"downscale it below the limit or remove it"
    )


def _pixels_in(exc: Exception) -> int | None:
    """The pixel count in Pillow's bomb message ("Image size (N pixels) exceeds …")."""
    found = re.search(r"\((\d+) pixels\)", str(exc))
    return int(found.group(1)) if found else None


def _open(fp: BinaryIO, name: str) -> Image.Image:
    """Parse the header with the bomb warning as an error and only the allowed formats."""
    start = fp.tell()
    if not fp.read(1):  # Pillow would call it an unknown format
        raise ImageError(
            name, "is empty (0 bytes): an interrupted copy or download; copy it again or remove it"
        )
    fp.seek(start)
    with _OPEN_LOCK, warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(fp, formats=OPEN_FORMATS)
        except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
            raise ImageError(name, _bomb_reason(_pixels_in(exc))) from None
        except UnidentifiedImageError:
            raise ImageError(
                name, f"not an image Pillow can decode (unknown or unsupported format); {_FIX}"
            ) from None
        except Exception as exc:  # a crafted header can trip any plugin: still one bad file
            raise ImageError(name, f"not an image Pillow can decode ({exc}); {_FIX}") from None
    if image.format not in ALLOWED_FORMATS:
        raise ImageError(name, f"not an image Pillow can decode ({image.format}); {_FIX}")
    width, height = image.size
    if width <= 0 or height <= 0:
        raise ImageError(name, f"has an empty size {width}×{height}; {_FIX}")
    if width * height > MAX_IMAGE_PIXELS:
        raise ImageError(name, _bomb_reason(width * height, f"{width}×{height}"))
    return image


def _upright(image: Image.Image, name: str) -> Image.Image:
    """Decode the first frame and apply EXIF orientation, so phone photos are not sideways.

    Returns a new image (never ``image`` itself), so the caller may close the one it opened.
    """
    try:
        image.load()  # first frame only: animated GIF/WebP/multi-page TIFF stop here
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise ImageError(name, _bomb_reason(_pixels_in(exc))) from None
    except Exception as exc:  # any plugin failure on crafted data is this file's problem only
        raise ImageError(
            name, f"truncated or corrupt image data ({exc}); re-export the file or remove it"
        ) from None
    try:
        return ImageOps.exif_transpose(image)
    except Exception:  # broken EXIF must not make good pixels unreadable
        return image.copy()


def _scaled(values: np.ndarray, full_scale: float) -> np.ndarray:
    """Scale to 0–255 by ``value * 255 / full_scale`` with rounding: never clip highlights."""
    scaled = np.floor(values.astype(np.float64) * (255.0 / full_scale) + 0.5)
    return np.clip(scaled, 0, 255).astype(np.uint8)


def _high_depth_to_l(image: Image.Image) -> Image.Image:
    """16-bit, 32-bit integer and float greyscale to 8-bit ``L``."""
    values = np.asarray(image)
    if image.mode == "F":
        values = np.nan_to_num(values.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        low, high = float(values.min()), float(values.max())
        if low >= 0.0 and high <= 1.0:
            return Image.fromarray(_scaled(values, 1.0), "L")
        if low >= 0.0 and high <= 255.0:
            return Image.fromarray(_scaled(values, 255.0), "L")
        span = high - low or 1.0
        return Image.fromarray(_scaled(values - low, span), "L")
    values = values.astype(np.int64)
    if image.mode.startswith("I;16"):
        return Image.fromarray(_scaled(values, 65535.0), "L")
    # Mode "I": PNG/TIFF 16-bit greyscale often arrives as 32-bit ints.
    high = int(values.max()) if values.size else 0
    values = np.maximum(values, 0)
    if high <= 255:
        return Image.fromarray(values.astype(np.uint8), "L")
    return Image.fromarray(_scaled(values, 65535.0 if high <= 65535 else float(high)), "L")


def _mode_to_rgb(image: Image.Image, name: str) -> Image.Image:
    """Any Pillow mode to 8-bit RGB; transparency becomes a white background."""
    mode = image.mode
    if mode == "RGB" and "transparency" not in image.info:
        return image
    if mode in ("F", "I") or mode.startswith("I;16"):
        return _high_depth_to_l(image).convert("RGB")
    has_alpha = mode in ("RGBA", "RGBa", "LA", "La", "PA") or "transparency" in image.info
    try:
        if has_alpha:
            rgba = image.convert("RGBA")
            background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            return Image.alpha_composite(background, rgba).convert("RGB")
        return image.convert("RGB")
    except Exception as exc:
        raise ImageError(
            name, f"has pixel mode {mode} that cannot become RGB ({exc}); {_FIX}"
        ) from None


def to_rgb(image: Image.Image, name: str | None = None) -> Image.Image:
    """THE conversion of a Pillow image to the pixels a model sees, for files and PIL images alike.

    The first frame, EXIF orientation applied, transparency composited on white, 16-bit and
    float greyscale scaled (not clipped) to 8 bits, palette/CMYK/greyscale made RGB. Training's
    decoder, ``predict``, the Python API and the app all go through it, so a transparent PNG is
    the same pixels whether it arrives as a path, as bytes or as an image someone opened
    (``Image.open(...).convert("RGB")`` would make its transparent parts black instead).

    Args:
        image: Any Pillow image; it is not changed.
        name: What an error calls the image (default: its file name, or ``<PIL image>``).

    Returns:
        A new, loaded ``RGB`` image.

    Raises:
        ImageError: Its data cannot be decoded, or its mode cannot become RGB.
    """
    if name is None:
        name = str(getattr(image, "filename", "") or "<PIL image>")
    return _mode_to_rgb(_upright(image, name), name)


def open_rgb(source: Source) -> Image.Image:
    """Decode an image file to an upright 8-bit RGB Pillow image, or raise ImageError.

    Args:
        source: A path, the file's bytes, or a binary file object.

    Returns:
        A loaded ``RGB`` image, detached from the file.

    Raises:
        ImageError: Not an allowed format, corrupt or truncated, or over ``MAX_IMAGE_PIXELS``.
    """
    name = _describe(source)
    fp = _stream(source, name)
    owns = fp is not source
    try:
        image = _open(fp, name)
        try:
            return to_rgb(image, name)
        finally:
            image.close()
    finally:
        if owns:
            fp.close()


def load_rgb(source: Source | Image.Image, size: int | None = None) -> np.ndarray:
    """Decode (and optionally resize) to a uint8 (H, W, 3) array: THE decode for train and predict.

    Args:
        source: A path, the file's bytes, a binary file object, or a Pillow image (converted
            by :func:`to_rgb`, exactly as the file it came from would be).
        size: Resize to ``(size, size)`` with bilinear filtering, squashing rather than cropping
            (what ``keras.utils.image_dataset_from_directory`` does by default); None keeps it.

    Returns:
        A C-contiguous, writable uint8 array of shape (H, W, 3).
    """
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
        raise ConfigError(f"Expected size to be a positive int or None. Received: size={size!r}")
    image = to_rgb(source) if isinstance(source, Image.Image) else open_rgb(source)
    if size is not None and image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.BILINEAR)
    return np.array(image, dtype=np.uint8, copy=True)


def image_size(source: Source) -> tuple[int, int]:
    """(width, height) as the image will be decoded (EXIF rotation applied), from the header."""
    name = _describe(source)
    fp = _stream(source, name)
    try:
        with _open(fp, name) as image:
            width, height = image.size
            try:
                orientation = image.getexif().get(0x0112, 1)
            except Exception:  # same tolerance as decoding
                orientation = 1
        return (height, width) if orientation in (5, 6, 7, 8) else (width, height)
    finally:
        if fp is not source:
            fp.close()


__all__ = [
    "ALLOWED_FORMATS",
    "IMAGE_EXTENSIONS",
    "MAX_IMAGE_PIXELS",
    "OPEN_FORMATS",
    "image_size",
    "load_rgb",
    "open_rgb",
    "to_rgb",
]
