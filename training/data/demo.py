"""The embedded demo dataset: procedural shapes, so a first run needs no download and no upload.

Four classes that differ in SHAPE only: ``circles``, ``squares``, ``stripes`` and ``crosses``.
Hue, brightness, position, scale, rotation and noise are drawn the same way for every class, and
every class covers about the same share of the image, so a model that only looks at colour stays at
chance. Shapes are large, antialiased and always lighter than their ground, so a small CNN from
random initial weights still learns them: a three-conv-layer net trained 10 epochs on 4 x 40 images
scores about 0.6 on fresh images (chance 0.25) at 32-48 px, about 0.75 with 100 per class. That
makes the demo a real test of the pipeline rather than a colour-histogram trick.

Everything comes from ``numpy.random.default_rng([seed, class, index])``: the same arguments give
byte-identical PNGs, and image ``i`` of a class does not change when ``per_class`` grows.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from training.errors import ConfigError

CLASSES = ("circles", "squares", "stripes", "crosses")
MARKER = ".babysitter-demo.json"
# Bump when the drawing changes, so existing demo folders are regenerated rather than reused.
GENERATOR_VERSION = 1
_SUPERSAMPLE = 4  # draw large, then downsample: antialiased edges like a photographed shape
# Polygons turn at most this far from upright. Full rotation makes circles and squares too alike
# for a small CNN learning from ~30 images per class; stripes take any orientation.
_MAX_TURN = math.radians(30)
_LUMA = np.array([0.299, 0.587, 0.114])
_MIN_CONTRAST = 110.0  # foreground minus background luma, 0-255

Point = tuple[float, float]


def _rotate(points: list[Point], centre: Point, angle: float) -> list[Point]:
    cx, cy = centre
    cos, sin = math.cos(angle), math.sin(angle)
    return [(cx + x * cos - y * sin, cy + x * sin + y * cos) for x, y in points]


def _outline(name: str, half: float, rng: np.random.Generator) -> list[Point]:
    """Vertices of one shape centred on the origin, ``half`` its half-extent."""
    if name == "circles":
        aspect = rng.uniform(0.9, 1.1)
        return [
            (half * aspect * math.cos(t), half / aspect * math.sin(t))
            for t in (2 * math.pi * k / 72 for k in range(72))
        ]
    if name == "squares":
        h = half * 0.88
        return [(-h, -h), (h, -h), (h, h), (-h, h)]
    h, a = half, half * rng.uniform(0.22, 0.34)  # crosses: arm half-width a
    return [(-a, -h), (a, -h), (a, -a), (h, -a), (h, a), (a, a), (a, h), (-a, h), (-a, a),
            (-h, a), (-h, -a), (-a, -a)]  # fmt: skip


def _stripes(canvas: int, rng: np.random.Generator) -> np.ndarray:
    """Parallel bars across the whole image: period, width, phase and orientation all vary."""
    period = canvas * rng.uniform(0.16, 0.3)
    width = period * rng.uniform(0.2, 0.35)
    offset = rng.uniform(0, period)
    angle = rng.uniform(0, math.pi)
    ys, xs = np.mgrid[0:canvas, 0:canvas].astype(np.float32) - canvas / 2
    u = xs * math.cos(angle) + ys * math.sin(angle) + offset
    return ((u % period) < width).astype(np.uint8) * 255


def _shape_mask(name: str, canvas: int, rng: np.random.Generator) -> Image.Image:
    """A white-on-black mask of one shape, randomly placed, scaled and turned."""
    if name == "stripes":
        return Image.fromarray(_stripes(canvas, rng), "L")
    # Every class covers about the same share of the image (~27%), so mean brightness says
    # nothing about the class: crosses are drawn larger, stripes are thin bars.
    half = canvas * rng.uniform(0.2, 0.36) * (1.25 if name == "crosses" else 1.0)
    margin = half * 1.05
    centre = (rng.uniform(margin, canvas - margin), rng.uniform(margin, canvas - margin))
    points = _rotate(_outline(name, half, rng), centre, rng.uniform(-_MAX_TURN, _MAX_TURN))
    mask = Image.new("L", (canvas, canvas), 0)
    ImageDraw.Draw(mask).polygon(points, fill=255)
    return mask


def _colours(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Random background and lighter foreground colours, the same distribution for every class.

    Hue and brightness are random; only the sign of the contrast is fixed (light shapes on a
    darker ground). Letting it flip too halves what a small model learns from 40 images a class.
    """
    while True:
        background, foreground = rng.uniform(0, 255, (2, 3))
        if (foreground - background) @ _LUMA >= _MIN_CONTRAST:
            return background, foreground


def draw_demo_image(class_name: str, size: int, rng: np.random.Generator) -> Image.Image:
    """One square RGB image of ``class_name``; every random choice comes from ``rng``."""
    if class_name not in CLASSES:
        raise ValueError(f"Expected class_name in {CLASSES}. Received: {class_name!r}")
    canvas = size * _SUPERSAMPLE
    mask = _shape_mask(class_name, canvas, rng)
    alpha = np.asarray(mask.resize((size, size), Image.Resampling.BOX), np.float32)[..., None]
    alpha /= 255.0
    background, foreground = _colours(rng)
    # A soft linear gradient on the background, so the plain regions are not flat either.
    gradient = np.linspace(-1, 1, size, dtype=np.float32)
    direction = rng.uniform(-25, 25, 2)
    shade = (gradient[None, :] * direction[0] + gradient[:, None] * direction[1])[..., None]
    pixels = background + shade
    pixels = pixels * (1 - alpha) + foreground * alpha
    pixels += rng.normal(0, rng.uniform(4, 18), (size, size, 3))
    return Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8), "RGB")


def _params(per_class: int, size: int, seed: int) -> dict[str, Any]:
    return {
        "generator": "babysitter-demo",
        "version": GENERATOR_VERSION,
        "classes": list(CLASSES),
        "per_class": per_class,
        "size": size,
        "seed": seed,
    }


def _file_names(per_class: int) -> list[str]:
    return [f"{i:04d}.png" for i in range(per_class)]


def _is_complete(target: Path, params: dict[str, Any]) -> bool:
    """Same parameters in the marker and every expected file present."""
    try:
        marker = json.loads((target / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    names = _file_names(params["per_class"])
    return marker == params and all(
        (target / cls / name).is_file() for cls in CLASSES for name in names
    )


def _write(folder: Path, params: dict[str, Any]) -> None:
    size, seed = params["size"], params["seed"]
    for index, cls in enumerate(CLASSES):
        (folder / cls).mkdir()
        for i, name in enumerate(_file_names(params["per_class"])):
            rng = np.random.default_rng([seed, index, i])
            draw_demo_image(cls, size, rng).save(folder / cls / name, format="PNG")
    # The marker goes last: its presence means every image before it was written.
    (folder / MARKER).write_text(json.dumps(params, indent=2) + "\n", encoding="utf-8")


def make_demo_dataset(target: Path, per_class: int = 40, size: int = 48, seed: int = 0) -> Path:
    """Write the demo dataset as ``target/<class>/<nnnn>.png`` and return ``target``.

    Idempotent: a complete dataset with the same parameters is left untouched. Otherwise it is
    written into a temporary sibling folder and renamed into place, so a reader never sees half a
    dataset and a crash leaves nothing half-written. A ``target`` that holds anything other than an
    earlier demo dataset is refused rather than replaced, so a wrong path cannot delete a user's
    images.

    Args:
        target: Folder to create (its parent is created too). Usually ``RunStore().demo_dir()``.
        per_class: Images per class (at least 1).
        size: Width and height in pixels (at least 8).
        seed: Seed for every random choice; the same seed gives byte-identical files.

    Raises:
        ConfigError: a bad argument, or ``target`` is a file or a non-demo folder with content.
    """
    target = Path(target)
    for name, value, low in (("per_class", per_class, 1), ("size", size, 8)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(f"Expected {name} to be an integer >= {low}. Received: {value!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"Expected seed to be an integer >= 0. Received: {seed!r}")
    params = _params(per_class, size, seed)
    if _is_complete(target, params):
        return target
    if target.exists() and not target.is_dir():
        raise ConfigError(f"Expected a folder for the demo dataset. Received a file: {target}")
    if target.is_dir() and any(target.iterdir()) and not (target / MARKER).exists():
        raise ConfigError(
            f"Refusing to write the demo dataset into {target}: it already holds files that are "
            "not a demo dataset. Choose an empty or new folder."
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", suffix=".tmp", dir=target.parent))
    old = tmp.with_name(tmp.name + ".old")
    try:
        _write(tmp, params)
        if target.exists():
            target.rename(old)
        try:
            tmp.rename(target)
        except OSError:
            if not _is_complete(target, params):  # another process may have just won the race
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return target
