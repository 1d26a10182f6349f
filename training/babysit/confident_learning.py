"""Confident learning's pieces, on out-of-fold probabilities: plain NumPy, no model.

Northcutt, Jiang and Chuang, "Confident Learning: Estimating Uncertainty in Dataset Labels" (JAIR
2021). ``label_noise`` names labels with :func:`worth_a_look`, the paper's "prune by noise rate":
the examples whose most probable other class beats their given label by the widest margin, as
many as the estimated number of wrong labels. The per-class thresholds and the confident joint
(the paper's eq. 1) are the paper's way of counting them; the check counts from validation
instead (:mod:`training.babysit.noise_estimate`), and does not call them.
"""

from __future__ import annotations

import numpy as np


def per_class_thresholds(labels: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """t_j: the mean probability of class j over the examples labelled j (NaN for no example)."""
    classes = probabilities.shape[1]
    out = np.full(classes, np.nan)
    for j in range(classes):
        mine = labels == j
        if mine.any():
            out[j] = float(probabilities[mine, j].mean())
    return out


def confident_classes(labels: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """j* of each example: the most probable class among those at or above their threshold, or
    -1 where no class reaches its threshold (the example is not counted in the confident joint).
    """
    thresholds = per_class_thresholds(labels, probabilities)
    above = probabilities >= np.where(np.isnan(thresholds), np.inf, thresholds)
    best = np.where(above, probabilities, -np.inf).argmax(axis=1)
    return np.where(above.any(axis=1), best, -1)


def confident_joint(labels: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """C[i, j]: examples labelled i whose confident class is j (Northcutt et al., eq. 1)."""
    classes = probabilities.shape[1]
    joint = np.zeros((classes, classes), dtype=np.int64)
    guess = confident_classes(labels, probabilities)
    counted = guess >= 0
    np.add.at(joint, (labels[counted], guess[counted]), 1)
    return joint


def label_issues(labels: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """Indices of the off-diagonal examples of the confident joint, the probability of their
    given label ascending (the likeliest errors first)."""
    guess = confident_classes(labels, probabilities)
    suspects = np.flatnonzero((guess >= 0) & (guess != labels))
    given = probabilities[suspects, labels[suspects]]
    return suspects[np.argsort(given, kind="stable")]


def margins(probabilities: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """How far the most probable other class beats the given label (negative: it does not)."""
    index = np.arange(len(labels))
    given = probabilities[index, labels]
    others = probabilities.copy()
    others[index, labels] = -np.inf
    return others.max(axis=1) - given


def worth_a_look(probabilities: np.ndarray, labels: np.ndarray, count: int) -> np.ndarray:
    """Positions of the ``count`` examples whose most probable other class beats their given
    label by the widest margin, widest first."""
    spread = margins(probabilities, labels)
    candidates = np.flatnonzero(spread > 0)
    ranked = candidates[np.argsort(-spread[candidates], kind="stable")]
    return ranked[: max(count, 0)]
