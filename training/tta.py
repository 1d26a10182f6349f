"""Test-time augmentation (``predict --tta``): a model's probabilities averaged over views of each
image that training taught it to treat alike.

The horizontal mirror image is always a view (a flipped photo shows the same class, and the
training augmentation flips). Where the run trained with rotation and zoom (the model's own
``augmentation`` layer says how much), two rotations by half the largest training angle and a
zoom in by half the largest training zoom are added: views inside what training showed the model,
never beyond. The views are made from the uint8 images at the model's size, with the same
bilinear, reflect-padded warp as the training augmentation, and the model (its preprocessing
and calibration inside) predicts each; the probabilities are averaged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import keras
import numpy as np

AUGMENTATION_LAYER = "augmentation"


@dataclass(frozen=True)
class View:
    """One view: a name to report, a mirror, a rotation (a fraction of a full turn, as the
    training augmentation counts it) and a scale (below 1 zooms in)."""

    name: str
    flip: bool = False
    rotation: float = 0.0
    scale: float = 1.0


ORIGINAL = View("original")
FLIP = View("horizontal flip", flip=True)


def tta_views(model: keras.Model) -> list[View]:
    """The views for ``model``: original and flip, plus rotations and a zoom where its training
    augmentation used them (a model saved without augmentation gets the flip only)."""
    views = [ORIGINAL, FLIP]
    try:
        augmentation = model.get_layer(AUGMENTATION_LAYER)
    except ValueError:
        return views
    rotation = float(getattr(augmentation, "rotation", 0.0))
    zoom = float(getattr(augmentation, "zoom", 0.0))
    if rotation > 0:
        degrees = rotation / 2 * 360
        views.append(View(f"rotated {degrees:+.0f}°", rotation=rotation / 2))
        views.append(View(f"rotated {-degrees:+.0f}°", rotation=-rotation / 2))
    if zoom > 0:
        views.append(View(f"zoomed in {zoom / 2:.0%}", scale=1.0 - zoom / 2))
    return views


def view_images(images: np.ndarray, view: View) -> np.ndarray:
    """``view`` of a uint8 (N, H, W, 3) batch, as uint8."""
    if view.flip:
        images = images[:, :, ::-1, :]
    if view.rotation == 0 and view.scale == 1:
        return np.ascontiguousarray(images)
    height, width = images.shape[1:3]
    angle = view.rotation * 2 * math.pi
    cos, sin = math.cos(angle) * view.scale, math.sin(angle) * view.scale
    cx, cy = (width - 1) / 2, (height - 1) / 2
    # Output pixel p samples input c + R·S·(p - c), c the image centre (as the training warp).
    transform = [cos, -sin, cx - cos * cx + sin * cy, sin, cos, cy - sin * cx - cos * cy, 0, 0]
    warped = keras.ops.image.affine_transform(
        keras.ops.convert_to_tensor(images.astype(np.float32)),
        keras.ops.convert_to_tensor(np.tile(np.float32(transform), (len(images), 1))),
        interpolation="bilinear",
        fill_mode="reflect",
    )
    return np.clip(np.rint(keras.ops.convert_to_numpy(warped)), 0, 255).astype(np.uint8)


def tta_probabilities(model: keras.Model, images: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """The mean of ``model``'s probabilities over :func:`tta_views` of uint8 ``images``."""
    views = tta_views(model)
    total = np.zeros((len(images), *model.output_shape[1:]), dtype=np.float64)
    for view in views:
        shown = view_images(images.astype(np.uint8), view)
        total += np.asarray(model.predict(shown, batch_size=batch_size, verbose=0), np.float64)
    return (total / len(views)).astype(np.float32)
