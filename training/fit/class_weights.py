"""``--class-weights auto|balanced|none``: whether the loss counts every class equally.

On imbalanced data a model can neglect a small class and still score well on accuracy, so
``auto`` (the default) weights the loss by inverse class frequency exactly when the audit's
``class_balance`` check warns (largest/smallest class over ``IMBALANCE_WARN``), and leaves a
balanced dataset's loss as it was. ``balanced`` always weights, ``none`` never does. The
decision is made once per dataset, from the audit, so a search's head trials and its
fine-tunes all train with the same weights.

A run's summary says what was decided (``class_weights``) and carries the per-class precision
and recall on validation (``per_class``), so a weighted run can be compared with an unweighted
one class by class.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from training.babysit.thresholds import IMBALANCE_WARN

SETTINGS = ("auto", "balanced", "none")


def balanced_class_weights(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """n / (k · count_c): every class contributes equally to the loss (the mean weight over
    the training images is 1, so the loss keeps its scale and the ln(C) start)."""
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    weights = len(labels) / (num_classes * np.maximum(counts, 1))
    return weights.astype(np.float32)


@dataclass(frozen=True)
class ClassWeighting:
    """What ``--class-weights`` decided for one dataset: the setting, whether the loss is
    weighted, the audit's imbalance ratio it was decided on, and the weights per class."""

    setting: str
    imbalance_ratio: float
    weights: np.ndarray | None

    @property
    def applied(self) -> bool:
        return self.weights is not None

    def record(self, class_names: list[str]) -> dict:
        """The run summary's ``class_weights`` entry (JSON-able)."""
        out: dict = {
            "setting": self.setting,
            "applied": self.applied,
            "imbalance_ratio": round(float(self.imbalance_ratio), 2),
            "threshold": IMBALANCE_WARN,
        }
        if self.weights is not None:
            out["weights"] = {
                name: round(float(w), 4) for name, w in zip(class_names, self.weights, strict=True)
            }
        return out


def class_weighting(
    setting: str, imbalance_ratio: float, labels: np.ndarray, num_classes: int
) -> ClassWeighting:
    """Resolve ``setting`` against the audit's ``imbalance_ratio`` (largest/smallest class)
    with the training split's ``labels``."""
    weighted = setting == "balanced" or (setting == "auto" and imbalance_ratio > IMBALANCE_WARN)
    weights = balanced_class_weights(labels, num_classes) if weighted else None
    return ClassWeighting(setting, float(imbalance_ratio), weights)


def weighting_for(setting: str, data) -> ClassWeighting:
    """:func:`class_weighting` for prepared data (``training.fit.prepare.PreparedData``): its
    audit's ratio and its training split's labels; ``train`` and a search call it alike."""
    labels = data.labels("train")
    return class_weighting(setting, data.audit.imbalance_ratio, labels, len(data.class_names))


def weighting_line(record: dict | None) -> str | None:
    """One line for the CLI from a summary's ``class_weights`` record (None without one)."""
    if not record:
        return None
    ratio, limit = record.get("imbalance_ratio"), record.get("threshold", IMBALANCE_WARN)
    setting = record.get("setting", "auto")
    if not record.get("applied"):
        if setting == "none":
            return f"class weights: none (--class-weights none; classes {ratio:g}× apart)"
        return (
            f"class weights: none (--class-weights auto: classes {ratio:g}× apart, "
            f"not over {limit:g}×)"
        )
    weights = ", ".join(f"{name} ×{w:.2f}" for name, w in (record.get("weights") or {}).items())
    why = (
        f"auto: classes {ratio:g}× apart, over {limit:g}×"
        if setting == "auto"
        else f"--class-weights {setting}"
    )
    return f"class weights: loss weighted by inverse class frequency ({why}): {weights}"


def class_lines(summary: dict) -> list[str]:
    """What ``train`` prints about the classes after a run: the class weights and each
    class's recall (where the run's summary has them)."""
    lines = [line] if (line := weighting_line(summary.get("class_weights"))) else []
    per_class = summary.get("per_class") or {}
    recalls = [
        f"{name} {scores['recall']:.0%}"
        for name, scores in (per_class.get("classes") or {}).items()
        if scores.get("recall") is not None
    ]
    if recalls:
        lines.append(f"recall per class ({per_class.get('split', 'val')}): {', '.join(recalls)}")
    return lines


def per_class_scores(
    labels: np.ndarray, probabilities: np.ndarray, class_names: list[str]
) -> dict[str, dict]:
    """Precision, recall and image count per class (None where a class has no image, or no
    prediction, to divide by), keyed by class name."""
    labels = np.asarray(labels, dtype=np.int64)
    guesses = np.asarray(probabilities).argmax(axis=1)
    out: dict[str, dict] = {}
    for index, name in enumerate(class_names):
        truth, called = labels == index, guesses == index
        hits = int(np.sum(truth & called))
        out[name] = {
            "precision": round(hits / called.sum(), 4) if called.any() else None,
            "recall": round(hits / truth.sum(), 4) if truth.any() else None,
            "images": int(truth.sum()),
        }
    return out


def per_class_record(predictions: Path, split: str) -> dict:
    """The run summary's ``per_class`` entry from its stored predictions file: ``split`` and
    each class's precision, recall and image count; empty when the file does not load."""
    try:
        with np.load(predictions) as saved:
            names = [str(n) for n in saved["class_names"]]
            scores = per_class_scores(saved["labels"], saved["probabilities"], names)
    except (OSError, KeyError, ValueError):
        return {}
    return {"per_class": {"split": split, "classes": scores}}
