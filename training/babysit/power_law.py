"""An inverse power law through a learning curve: acc(n) = a − b·n^(−c), and how sure it is.

Learning curves of a fixed model family flatten as a power law (Hestness et al. 2017; keras.io's
``sample_size_estimate`` example fits the same form). The curve is pinned to the accuracy
measured with all the training images (``anchor``): that is the number a user has, and a
projection that did not start from it would contradict the line above it. Left free are the
slope ``b ≥ 0`` and the exponent ``c`` (a = acc(N) + b·N^(−c), at most 1).

For a fixed ``c`` the model is linear in ``b``, so the fit is a closed-form weighted least
squares on a grid of exponents (no optimizer, no starting point, no local minimum), vectorised
over the grid and over bootstrap replicates: a thousand refits take milliseconds. The
uncertainty is a bootstrap: each size's points resampled with replacement, and the anchor moved
by the spread one training set of its size shows (the anchor is one draw, and a lucky one would
flatten the curve pinned to it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EXPONENTS = np.geomspace(0.02, 3.0, 96)
"""The exponents ``c`` tried. Accuracy curves of image classifiers fall in about 0.1–1; the
grid reaches 0.02 (almost log-linear: gains that keep coming) and 3 (a sharp elbow)."""


@dataclass(frozen=True)
class PowerLaw:
    """acc(n) = a − b·n^(−c), fitted through (``anchor_images``, ``anchor``)."""

    b_rel: float
    """The slope in units of the anchor's size: acc(n) = anchor + b_rel·(1 − (n/N)^(−c))."""
    c: float
    anchor_images: int
    anchor: float
    rmse: float

    def __call__(self, images) -> np.ndarray:
        x = np.asarray(images, dtype=np.float64) / self.anchor_images
        return self.anchor + self.b_rel * (1.0 - x ** (-self.c))

    @property
    def a(self) -> float:
        """The ceiling: the accuracy the curve tends to with unlimited images."""
        return self.anchor + self.b_rel

    @property
    def b(self) -> float:
        """The slope in images: b_rel·N^c."""
        return self.b_rel * float(self.anchor_images) ** self.c

    def to_dict(self) -> dict[str, float]:
        return {
            "a": round(self.a, 6),
            "b": float(f"{self.b:.6g}"),
            "c": round(self.c, 6),
            "rmse": round(self.rmse, 6),
        }


def _fit_many(x: np.ndarray, r: np.ndarray, headroom) -> tuple[np.ndarray, np.ndarray]:
    """Best (b_rel, c) per row of ``r`` (rise over the anchor at relative sizes ``x``).

    ``x``: (P,) sizes over the anchor's; ``r``: (R, P) accuracies minus the anchor's. Each point
    weighs its relative size (its accuracy's variance falls as 1/n). For each exponent,
    w = 1 − x^(−c) and b = Σ x·w·r / Σ x·w², clipped to [0, headroom] (per row: the ceiling
    a = anchor + b stays at most 1); the exponent with the least weighted squared error wins
    (the first on a tie: with b = 0 every exponent fits alike)."""
    weight = x  # (P,): a point's variance falls as 1/n, so its weight grows as n
    w = 1.0 - x[None, :] ** (-EXPONENTS[:, None])  # (K, P)
    denom = np.maximum(np.sum(weight * w * w, axis=1), 1e-12)  # (K,)
    headroom = np.broadcast_to(np.maximum(np.asarray(headroom, np.float64), 0.0), (len(r),))
    b = np.clip(((r * weight) @ w.T) / denom, 0.0, headroom[:, None])  # (R, K)
    residual = r[:, None, :] - b[:, :, None] * w[None, :, :]  # (R, K, P)
    sse = np.sum(weight * residual**2, axis=2)
    best = np.argmin(sse, axis=1)
    rows = np.arange(len(r))
    return b[rows, best], EXPONENTS[best]


def fit_power_law(images, accuracies, anchor_images: int, anchor: float) -> PowerLaw | None:
    """The curve through (``anchor_images``, ``anchor``) closest to the other points; None
    with fewer than two other distinct sizes (two free parameters)."""
    n = np.asarray(images, dtype=np.float64)
    y = np.asarray(accuracies, dtype=np.float64)
    keep = n < anchor_images
    if len(np.unique(n[keep])) < 2:
        return None
    x, r = n[keep] / anchor_images, y[keep] - anchor
    b, c = _fit_many(x, r[None, :], max(0.0, 1.0 - anchor))
    law = PowerLaw(float(b[0]), float(c[0]), int(anchor_images), float(anchor), 0.0)
    rmse = float(np.sqrt(np.mean((law(n) - y) ** 2)))
    return PowerLaw(law.b_rel, law.c, law.anchor_images, law.anchor, rmse)


def bootstrap_gains(
    images,
    accuracies,
    anchor_images: int,
    anchor: float,
    multiples,
    draw_sd=None,
    replicates: int = 1000,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """(expected, one draw): two (replicates, len(multiples)) arrays of the accuracy at each
    multiple of the anchor's size minus the anchor's, one row per replicate.

    Each replicate resamples each size's points with replacement, moves the anchor by its own
    draw noise (``draw_sd(n)``: how far one training set of n images lands from the curve; None
    for none; the anchor is one such set) and refits: ``expected`` is where that curve passes.
    ``one draw`` adds the draw noise of the projection's own size: where the accuracy of one
    training set of that size would land."""
    n = np.asarray(images, dtype=np.float64)
    y = np.asarray(accuracies, dtype=np.float64)
    keep = n < anchor_images
    n, y = n[keep], y[keep]
    rng = np.random.default_rng(seed)
    picks = []
    for size in np.unique(n):
        where = np.flatnonzero(n == size)
        picks.append(where[rng.integers(0, len(where), (replicates, len(where)))])
    rows = np.concatenate(picks, axis=1)  # (R, P): indices into the points
    x = n[rows[0]] / anchor_images  # the same sizes in every replicate
    k = np.asarray(multiples, dtype=np.float64)
    sd = (lambda m: 0.0) if draw_sd is None else draw_sd
    shift = rng.normal(0.0, 1.0, (replicates, 1)) * sd(anchor_images)
    centre = anchor + shift  # (R, 1): where the curve may pass at the anchor's size
    b, c = _fit_many(x, y[rows] - centre, 1.0 - centre[:, 0])
    expected = np.clip(centre + b[:, None] * (1.0 - k[None, :] ** (-c[:, None])), 0.0, 1.0)
    noise = rng.normal(0.0, 1.0, expected.shape) * np.array([sd(m * anchor_images) for m in k])
    return expected - anchor, np.clip(expected + noise, 0.0, 1.0) - anchor
