"""How alike two images are: perceptual-hash candidates, confirmed on small thumbnails.

A perceptual-hash match (within a few of 64 bits) is only a candidate: look-alike but distinct
images (procedural shapes sharing a layout, a fixed camera) hash alike too. A candidate is a near
duplicate only when 32 px thumbnails of the two images agree as well (``NEAR_MAX_PIXEL_DIFF``).
All of it vectorised: 10k images' hashes compare in well under a second.
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

THUMB_PX = 32
"""Side of the RGB thumbnail (box-filtered, so every source pixel counts) that confirms a
perceptual-hash candidate. 3 KB an image, kept in memory during the audit only, never stored."""
NEAR_MAX_PIXEL_DIFF = 10.0
"""Largest thumbnail difference (see :func:`pixel_diff`, 0-255 levels) of a near duplicate.

Measured on ``THUMB_PX`` thumbnails, over pairs within the default 4-bit perceptual-hash
distance (the only pairs ever compared):

* Copies of the same photo (each of the 396 photos of the hymenoptera set re-encoded as JPEG at
  quality 50/75/95, resized 0.5× and 2×, 0.5× then JPEG 75, brightness ×0.95 and ×1.05, +12
  levels, +12 levels then JPEG 85): 3,960 pairs, 99% under 3.3, the largest 8.3 (a 200 px photo
  halved, then JPEG 75). Smooth synthetic photos (``tests.imagegen.photo_image``): at most 6.3.
  Crops that stay within the hash distance: 84% of 2% crops and 40% of 5% crops pass.
* Distinct photos: the closest of all 78,210 pairs of those 396 photos differs by 12.25 (and
  no such pair is even a hash candidate).
* Distinct look-alikes (``tests.imagegen.shape_image``: circles/squares/stripes in one colour per
  class, jittered position and size, 48 px, separate Gaussian noise per image), 240 images: of
  the hash candidates, the closest differs by 7.3 at noise σ 8 (31 of 125 pass), 10.2 at σ 12,
  12.8 at σ 16, 15.5 at σ 20, 20.8 at σ 30 (none pass): the difference is mostly their
  independent noise.

10 sits in the middle of the photo gap (8.3 … 12.25) and below the closest look-alike candidate
at every noise σ ≥ 12. What it cannot separate, no pixel threshold can: re-encoding a tiny
(48 px), noisy, saturated image changes it as much as drawing it again with fresh noise does
(JPEG chroma subsampling, lost noise: at σ 20 only half of such copies pass), and a 5% crop moves
content as far as a jittered drawing. Some copies therefore go unreported and some nearly
noiseless look-alikes pass: a near leak warns, only an exact one fails.
"""


def _thumbnail(image: Image.Image) -> np.ndarray:
    return np.asarray(image.resize((THUMB_PX, THUMB_PX), Image.Resampling.BOX), dtype=np.uint8)


_QUARTER = 4  # centred thumbnails are kept in quarter levels, as int16: half the memory traffic


def _centred(thumbs: np.ndarray) -> np.ndarray:
    """Thumbnails (n, H, W, 3) minus each one's channel means, flat, in quarter levels (int16)."""
    x = thumbs.astype(np.float32)
    x -= x.mean(axis=(1, 2), keepdims=True)
    return np.rint(x * _QUARTER).astype(np.int16).reshape(len(thumbs), -1)


def _centred_diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = a - b  # |values| ≤ 2 × 255 × 4: int16 is enough
    np.abs(d, out=d)
    return d.sum(axis=1, dtype=np.int64) / (_QUARTER * a.shape[1])


def pixel_diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """How far apart thumbnails ``a[i]`` and ``b[i]`` (n, H, W, 3) are, in 0-255 levels.

    The mean absolute difference after removing each channel's mean difference (to a quarter
    level): a uniform brightness or colour shift (an edited copy) costs nothing, while a different
    layout, shape or noise pattern (a different image) does. See :data:`NEAR_MAX_PIXEL_DIFF`.
    """
    return _centred_diff(_centred(a), _centred(b))


class TooManyPairsError(Exception):
    """More look-alike pairs than ``max_pairs``: the hashes cannot tell these images apart."""


def near_pairs(hashes: np.ndarray, threshold: int, max_pairs: int | None = None) -> np.ndarray:
    """Index pairs (i < j) of 64-bit hashes within ``threshold`` bits: chunked, vectorised.

    Each chunk compares a block of rows with all later hashes (about 4M pairs, ~40 MB), so 10k
    images take well under a second without an O(n²) Python loop.

    Raises:
        TooManyPairsError: More than ``max_pairs`` pairs (memory stays bounded).
    """
    hashes = np.asarray(hashes, dtype=np.uint64)
    chunk = max(16, min(1024, 4_000_000 // max(len(hashes), 1)))
    found, total = [], 0
    for start in range(0, len(hashes), chunk):
        block = hashes[start : start + chunk]
        distance = np.bitwise_count(block[:, None] ^ hashes[None, start:])
        i, j = np.nonzero(distance <= threshold)
        keep = j > i  # both index from ``start``
        found.append(np.stack([i[keep] + start, j[keep] + start], axis=1).astype(np.int64))
        total += len(found[-1])
        if max_pairs is not None and total > max_pairs:
            raise TooManyPairsError(total)
    return np.concatenate(found) if found else np.zeros((0, 2), dtype=np.int64)


def component_labels(n: int, pairs: np.ndarray) -> np.ndarray:
    """Connected-component label of each of ``n`` nodes joined by index ``pairs`` (k, 2).

    Labels count up in the order of each component's smallest node.
    """
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    graph = coo_matrix((np.ones(len(pairs), dtype=np.int8), pairs.T), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def _member_pairs(node: np.ndarray, pairs: np.ndarray, limit: int) -> np.ndarray:
    """Pairs of items (i < j) whose nodes are a pair in ``pairs`` or the same node, vectorised.

    Raises:
        TooManyPairsError: More than ``limit`` pairs.
    """
    count = np.bincount(node)
    order = np.argsort(node, kind="stable")
    start = np.cumsum(count) - count
    shared = np.nonzero(count > 1)[0]
    u = np.concatenate([pairs[:, 0], shared])
    v = np.concatenate([pairs[:, 1], shared])
    n = count[u] * count[v]
    if int(n.sum()) > limit:
        raise TooManyPairsError(int(n.sum()))
    which = np.repeat(np.arange(len(u)), n)
    k = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)
    width = count[v][which]
    a = order[start[u][which] + k // width]
    b = order[start[v][which] + k % width]
    keep = (u[which] != v[which]) | (a < b)
    return np.stack([np.minimum(a, b)[keep], np.maximum(a, b)[keep]], axis=1)


def _verified(thumbs: list[np.ndarray], pairs: np.ndarray, max_diff: float) -> np.ndarray:
    """The pairs (of indices into ``thumbs``) whose thumbnails agree: pixel_diff ≤ max_diff.

    Only the thumbnails of candidates are centred, and pairs go in chunks that stay in cache
    (256 pairs × 2 × 6 KB): a few µs a pair, so 100k candidates take well under a second.
    """
    used, local = np.unique(pairs, return_inverse=True)
    local = local.reshape(pairs.shape)
    centred = _centred(np.stack([thumbs[i] for i in used.tolist()])) if len(used) else None
    keep = np.zeros(len(pairs), dtype=bool)
    for lo in range(0, len(pairs), 256):
        a, b = local[lo : lo + 256, 0], local[lo : lo + 256, 1]
        keep[lo : lo + 256] = _centred_diff(centred[a], centred[b]) <= max_diff
    return pairs[keep]
