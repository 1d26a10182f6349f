"""A procedural *source* task to pretrain backbones on, disjoint from the data we benchmark on.

ImageNet weights cannot be downloaded everywhere (CI, an offline laptop), yet the default user
path (``--weights`` pretrained: BatchNorm frozen, only the top blocks unfrozen) must be tested
and benchmarked with weights that have learned *something*. So ``bench/pretrain.py`` trains a
backbone on the many classes drawn here and saves it as a ``.weights.h5`` for ``--weights PATH``.

The classes are parametrised families (gratings at fixed orientations and frequencies, regular
polygons and stars, blob counts, colour-pair checkerboards, rings, sunbursts, noise textures…),
none of them one of the demo's circles, squares, stripes or crosses, so a benchmark on the demo
measures transfer, not memory. Position, scale, phase, colours, a background gradient and pixel
noise vary within a class; only the family's parameter says which class an image belongs to.

Everything comes from ``numpy.random.default_rng([seed, stream, class, index])``: the same
arguments give the same pixels, and image ``i`` of a class does not change when ``images``
grows. Drawing is vectorised NumPy on a 2x supersampled grid (antialiased edges), about two
milliseconds an image at 96 px.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

_SUPERSAMPLE = 2
_LUMA = np.array([0.299, 0.587, 0.114])
_MIN_CONTRAST = 70.0  # |foreground - background| luma, 0-255: the pattern must be visible


@dataclass(frozen=True)
class SourceClass:
    """One class of the source task: a family's drawing function and its fixed parameters."""

    name: str
    family: str
    params: dict[str, Any]


Grid = tuple[np.ndarray, np.ndarray]  # (ys, xs) in [0, 1), supersampled
Mask = Callable[[Grid, dict[str, Any], np.random.Generator], np.ndarray]


def _centre(rng: np.random.Generator, margin: float) -> tuple[float, float]:
    return rng.uniform(margin, 1 - margin), rng.uniform(margin, 1 - margin)


def _grating(grid: Grid, p: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    """Parallel bars at a fixed orientation (±8°) and period (±15%), random phase."""
    ys, xs = grid
    angle = math.radians(p["angle"] + rng.uniform(-8, 8))
    period = p["period"] * rng.uniform(0.85, 1.15)
    u = xs * math.cos(angle) + ys * math.sin(angle) + rng.uniform(0, period)
    return (u % period) < period * rng.uniform(0.4, 0.6)


def _polar(grid: Grid, rng: np.random.Generator, margin: float) -> tuple[np.ndarray, ...]:
    ys, xs = grid
    cy, cx = _centre(rng, margin)
    dy, dx = ys - cy, xs - cx
    return np.hypot(dy, dx), np.arctan2(dy, dx)


def _polygon(grid: Grid, p: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    """A filled regular polygon with ``sides`` sides, any rotation, random size and place."""
    radius = rng.uniform(0.2, 0.34)
    r, theta = _polar(grid, rng, radius)
    k = p["sides"]
    sector = 2 * math.pi / k
    local = (theta + rng.uniform(0, sector)) % sector - sector / 2
    return r <= radius * math.cos(math.pi / k) / np.cos(local)


def _star(grid: Grid, p: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    """A filled star with ``points`` points: the radius zigzags between outer and inner."""
    radius = rng.uniform(0.22, 0.36)
    r, theta = _polar(grid, rng, radius)
    sector = 2 * math.pi / p["points"]
    phase = ((theta + rng.uniform(0, sector)) % sector) / sector  # 0..1 within one point
    inner = rng.uniform(0.35, 0.5)
    return r <= radius * (inner + (1 - inner) * np.abs(1 - 2 * phase))


def _blobs(grid: Grid, p: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    """``count`` separate discs: the class is how many there are, not where or how big."""
    ys, xs = grid
    mask = np.zeros(ys.shape, bool)
    radius = rng.uniform(0.06, 0.1)
    placed: list[tuple[float, float]] = []
    while len(placed) < p["count"]:
        cy, cx = _centre(rng, radius * 1.2)
        if all(math.hypot(cy - y, cx - x) > 2.6 * radius for y, x in placed):
            placed.append((cy, cx))
            mask |= np.hypot(ys - cy, xs - cx) <= radius * rng.uniform(0.85, 1.15)
    return mask


def _checker(grid: Grid, p: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    """A checkerboard (its colours come from the class: see :func:`_colours`)."""
    ys, xs = grid
    cell = rng.uniform(0.1, 0.25)
    oy, ox = rng.uniform(0, cell, 2)
    return ((np.floor((ys + oy) / cell) + np.floor((xs + ox) / cell)) % 2).astype(bool)


def _rings(grid: Grid, p: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    """Concentric rings around a random centre, at the class's period."""
    r, _ = _polar(grid, rng, 0.2)
    period = p["period"] * rng.uniform(0.85, 1.15)
    return ((r + rng.uniform(0, period)) % period) < period / 2


def _sunburst(grid: Grid, p: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    """``spokes`` alternating wedges around a random centre."""
    _, theta = _polar(grid, rng, 0.25)
    return np.sin(p["spokes"] / 2 * theta + rng.uniform(0, 2 * math.pi)) > 0


def _noise(grid: Grid, p: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    """Thresholded smooth noise: irregular blobs whose size is the class's ``cells``."""
    n = p["cells"]
    coarse = Image.fromarray(rng.normal(size=(n, n)).astype(np.float32), "F")
    smooth = np.asarray(coarse.resize(grid[0].shape[::-1], Image.Resampling.BICUBIC))
    return smooth > np.median(smooth)


def _dots(grid: Grid, p: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    """A regular lattice of small dots."""
    ys, xs = grid
    step = rng.uniform(0.12, 0.2)
    oy, ox = rng.uniform(0, step, 2)
    dy = (ys + oy) % step - step / 2
    dx = (xs + ox) % step - step / 2
    return np.hypot(dy, dx) <= step * rng.uniform(0.2, 0.3)


def _annulus(grid: Grid, p: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    """One thick hollow ring."""
    outer = rng.uniform(0.2, 0.34)
    r, _ = _polar(grid, rng, outer)
    return (r <= outer) & (r >= outer * rng.uniform(0.45, 0.65))


def _edge(grid: Grid, p: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    """Two halves split by a straight edge at any angle, through a point near the middle."""
    ys, xs = grid
    angle = rng.uniform(0, 2 * math.pi)
    cy, cx = _centre(rng, 0.3)
    return (xs - cx) * math.cos(angle) + (ys - cy) * math.sin(angle) > 0


def _hatch(grid: Grid, p: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    """Thin lines crossing at right angles (a window grid), turned by any angle."""
    ys, xs = grid
    angle = rng.uniform(0, math.pi / 2)
    step = rng.uniform(0.14, 0.22)
    width = step * rng.uniform(0.15, 0.25)
    u = xs * math.cos(angle) + ys * math.sin(angle) + rng.uniform(0, step)
    v = ys * math.cos(angle) - xs * math.sin(angle) + rng.uniform(0, step)
    return ((u % step) < width) | ((v % step) < width)


def _zigzag(grid: Grid, p: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    """Horizontal or vertical zigzag bands (a grating bent by a triangle wave)."""
    ys, xs = grid
    if rng.random() < 0.5:
        ys, xs = xs, ys
    wave = rng.uniform(0.12, 0.2)
    amplitude = wave * rng.uniform(0.4, 0.7)
    bend = amplitude * np.abs(2 * ((xs / wave + rng.uniform(0, 1)) % 1) - 1)
    period = rng.uniform(0.18, 0.26)
    return ((ys + bend + rng.uniform(0, period)) % period) < period / 2


FAMILIES: dict[str, Mask] = {
    "grating": _grating,
    "polygon": _polygon,
    "star": _star,
    "blobs": _blobs,
    "checker": _checker,
    "rings": _rings,
    "sunburst": _sunburst,
    "noise": _noise,
    "dots": _dots,
    "annulus": _annulus,
    "edge": _edge,
    "hatch": _hatch,
    "zigzag": _zigzag,
}

# Colour pairs of the checkerboard classes (RGB); every other family takes random colours.
_CHECKER_COLOURS = {
    "red-green": ((210, 40, 40), (40, 180, 60)),
    "blue-yellow": ((40, 70, 210), (230, 210, 40)),
    "magenta-cyan": ((200, 40, 190), (40, 200, 210)),
    "orange-purple": ((240, 140, 30), (110, 40, 160)),
}


def _family_members() -> list[list[SourceClass]]:
    """Each family's classes, in the order they are taken when fewer classes are asked for."""

    def each(family: str, key: str, values: dict[str, Any]) -> list[SourceClass]:
        return [SourceClass(f"{family}-{name}", family, {key: v}) for name, v in values.items()]

    gratings = [
        SourceClass(f"grating-{angle:03d}-{name}", "grating", {"angle": angle, "period": period})
        for name, period in (("wide", 0.28), ("fine", 0.11))
        for angle in (0, 90, 45, 135)
    ]
    return [
        gratings,
        each("polygon", "sides", {"3": 3, "6": 6, "5": 5})
        + each("star", "points", {"5": 5, "4": 4}),
        each("blobs", "count", {"1": 1, "4": 4, "2": 2, "7": 7}),
        each("checker", "colours", {pair: pair for pair in _CHECKER_COLOURS}),
        [
            *each("rings", "period", {"wide": 0.2, "fine": 0.08}),
            SourceClass("annulus", "annulus", {}),
        ],
        each("sunburst", "spokes", {"6": 6, "16": 16}),
        each("noise", "cells", {"coarse": 4, "fine": 12}),
        [SourceClass("dots", "dots", {}), SourceClass("edge", "edge", {})],
        [SourceClass("zigzag", "zigzag", {}), SourceClass("hatch", "hatch", {})],
    ]


def _interleave(groups: list[list[SourceClass]]) -> tuple[SourceClass, ...]:
    """Round-robin over the families, so the first N classes span as many families as possible."""
    out: list[SourceClass] = []
    for rank in range(max(map(len, groups))):
        out.extend(group[rank] for group in groups if rank < len(group))
    return tuple(out)


SOURCE_CLASSES = _interleave(_family_members())
MAX_CLASSES = len(SOURCE_CLASSES)


def source_classes(count: int) -> tuple[SourceClass, ...]:
    """The first ``count`` source classes (2..``MAX_CLASSES``)."""
    if isinstance(count, bool) or not isinstance(count, int) or not 2 <= count <= MAX_CLASSES:
        raise ValueError(
            f"Expected classes to be an integer in [2, {MAX_CLASSES}]. Received: {count!r}"
        )
    return SOURCE_CLASSES[:count]


def _colours(source: SourceClass, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Ground and pattern colours: the class's pair for checkerboards, random (either
    polarity, visible contrast) for everything else, so colour says nothing about the shape."""
    if source.family == "checker":
        pair = np.array(_CHECKER_COLOURS[source.params["colours"]], np.float64)
        pair = pair + rng.uniform(-20, 20, (2, 3))
        return (pair[0], pair[1]) if rng.random() < 0.5 else (pair[1], pair[0])
    while True:
        background, foreground = rng.uniform(0, 255, (2, 3))
        if abs((foreground - background) @ _LUMA) >= _MIN_CONTRAST:
            return background, foreground


def draw_source_image(source: SourceClass, size: int, rng: np.random.Generator) -> np.ndarray:
    """One ``(size, size, 3)`` uint8 image of ``source``; every random choice comes from ``rng``."""
    canvas = size * _SUPERSAMPLE
    axis = (np.arange(canvas, dtype=np.float32) + 0.5) / canvas
    grid = (axis[:, None] + np.zeros((1, canvas), np.float32), np.broadcast_to(axis, (canvas,) * 2))
    mask = FAMILIES[source.family](grid, source.params, rng).astype(np.float32)
    alpha = mask.reshape(size, _SUPERSAMPLE, size, _SUPERSAMPLE).mean(axis=(1, 3))[..., None]
    background, foreground = _colours(source, rng)
    ramp = np.linspace(-1, 1, size, dtype=np.float32)
    tilt = rng.uniform(-25, 25, 2)
    shade = (ramp[None, :] * tilt[0] + ramp[:, None] * tilt[1])[..., None]
    pixels = background + shade + (foreground - background) * alpha
    pixels += rng.normal(0, rng.uniform(3, 15), (size, size, 3))
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)


def make_source_arrays(
    classes: int, images: int, size: int, seed: int = 0, stream: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """``images`` images spread evenly over the first ``classes`` classes, in class order.

    Returns ``(x, y)``: uint8 ``(images, size, size, 3)`` and int32 labels. Image ``i`` of class
    ``c`` comes from ``default_rng([seed, stream, c, i])``: streams are disjoint sets of the same
    task (stream 0 for training, 1 for validation), and image ``i`` does not change when
    ``images`` grows.
    """
    chosen = source_classes(classes)
    if isinstance(images, bool) or not isinstance(images, int) or images < classes:
        raise ValueError(
            f"Expected images to be an integer >= classes ({classes}). Received: {images!r}"
        )
    if isinstance(size, bool) or not isinstance(size, int) or size < 8:
        raise ValueError(f"Expected size to be an integer >= 8. Received: {size!r}")
    x = np.empty((images, size, size, 3), np.uint8)
    y = np.arange(images, dtype=np.int32) * classes // images
    counters = np.zeros(classes, np.int64)
    for row, label in enumerate(y):
        rng = np.random.default_rng([seed, stream, int(label), int(counters[label])])
        counters[label] += 1
        x[row] = draw_source_image(chosen[label], size, rng)
    return x, y
