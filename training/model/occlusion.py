"""Occlusion sensitivity (Zeiler & Fergus 2014): where covering the image costs the class most.

The fallback where Grad-CAM has no convolutional map to read: it needs forward passes only, so
it explains any model on any backend. A square patch of the image's mean colour slides over it;
each pixel's heat is the average drop of the class's probability over the patches that covered
it. Coarser and slower than Grad-CAM (one forward pass per patch position), never wrong about
what the model uses.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

PATCH_FRACTION = 4
"""The patch is 1/4 of the image side, moved by half its size: 7 × 7 positions."""


def occlusion(
    probabilities: Callable[[np.ndarray], np.ndarray], image: np.ndarray, class_index: int
) -> np.ndarray:
    """An (H, W) map, not normalised, of how much hiding each region lowers ``class_index``'s
    probability for the uint8 (H, W, 3) ``image``."""
    height, width = image.shape[:2]
    patch_h, patch_w = max(1, height // PATCH_FRACTION), max(1, width // PATCH_FRACTION)
    tops = _positions(height, patch_h)
    lefts = _positions(width, patch_w)
    fill = image.reshape(-1, 3).mean(axis=0).round().astype(np.uint8)
    covered = []
    for top in tops:
        for left in lefts:
            copy = image.copy()
            copy[top : top + patch_h, left : left + patch_w] = fill
            covered.append(copy)
    base = float(probabilities(image[None])[0, class_index])
    drops = np.maximum(base - probabilities(np.stack(covered))[:, class_index], 0.0)
    heat = np.zeros((height, width), np.float32)
    counts = np.zeros((height, width), np.float32)
    for drop, (top, left) in zip(drops, [(t, s) for t in tops for s in lefts], strict=True):
        heat[top : top + patch_h, left : left + patch_w] += drop
        counts[top : top + patch_h, left : left + patch_w] += 1
    return heat / np.maximum(counts, 1)


def _positions(side: int, patch: int) -> list[int]:
    """Patch offsets every half patch, the last one flush with the edge."""
    step = max(1, patch // 2)
    last = side - patch
    return sorted({*range(0, last + 1, step), last})
