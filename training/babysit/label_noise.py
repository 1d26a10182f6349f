"""``label_noise``: do the training labels match the images, and which ones look wrong?

On the backbone features computed once (seconds, no backbone pass), a linear softmax head
predicts every example out of fold (stratified k-fold: it never saw the example it predicts).
Then the confident-learning rule of Northcutt, Jiang and Chuang ("Confident Learning: Estimating
Uncertainty in Dataset Labels", JAIR 2021): the threshold of class j is the mean out-of-fold
probability of j over the examples labelled j; an example labelled i counts in the confident
joint at (i, j*), j* the most probable class among those whose probability reaches their
threshold. Off-diagonal examples are label-issue suspects, ranked by the probability of their
given label, lowest first.

The verdict compares the training split with the validation split, whose own labels are judged
the same way (k-fold within validation) for reference, so that weak features are never blamed
on the labels:

- training labels at chance while validation's are clearly predictable: the training labels do
  not match the images (``fail``, ``evidence["cause"] == "labels"``);
- both at chance: the features cannot judge any labels (``warn``, cause ``"features"``);
- training at chance, validation only weakly above it: either (``warn``,
  ``"features_or_labels"``);
- clearly more training suspects than the features produce on validation: some training labels
  are wrong (``warn``, ``"noisy_labels"``);
- otherwise ``ok``.

The classifier is scikit-learn's (``LogisticRegression`` on standardized features, stratified
folds); the rule itself is a few lines of NumPy (cleanlab implements it too, but is AGPL-3.0).

One concept over 400 lines: one check (out-of-fold confident learning) and its evidence.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from training.babysit.findings import Finding
from training.babysit.thresholds import (
    LABEL_NOISE_CHANCE_MARGIN,
    LABEL_NOISE_EXCESS,
    LABEL_NOISE_FOLDS,
    LABEL_NOISE_LEARNED,
    LABEL_NOISE_MAX_ROWS,
    LABEL_NOISE_MIN_PER_CLASS,
    LABEL_NOISE_SHARE,
    LABEL_NOISE_SUSPECTS_SHOWN,
    LABEL_NOISE_Z,
)

CHECK = "label_noise"
HEAD_C = 0.1
"""Inverse L2 strength of the logistic regression on standardized features: ten times
scikit-learn's default penalty. A weakly regularized head fits the flipped labels of its own
training folds, so it flags fewer of them and more clean ones: with 20% of the training labels of
scikit-learn's digits flipped, precision 0.85 at C=1, 0.93 at 0.1, recall 0.78-0.80 at both;
at 0.01 the clean validation score starts to fall (0.96 to 0.92), the head underfits."""
HEAD_MAX_ITER = 100
"""L-BFGS iterations per fold, a bound on the time only: on 3,200 rows of 2,048 features the fit
converged in 7-25 iterations with clean, 20% flipped and shuffled labels alike."""


# -- the confident-learning rule ---------------------------------------------------------------


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


# -- out-of-fold predictions -------------------------------------------------------------------


@dataclass
class SplitResult:
    """Out-of-fold predictions and the rule's suspects for one split.

    ``rows`` index the split's input; ``labels`` and the probability columns index
    ``class_ids``, the split's judged classes (indices into the class names).
    """

    judged: bool
    reason: str = ""
    rows: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    labels: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    probabilities: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    class_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    folds: int = 0
    skipped_classes: list[int] = field(default_factory=list)
    accuracy: float | None = None
    balanced_accuracy: float | None = None
    suspects: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    confident: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    @property
    def chance(self) -> float | None:
        return 1.0 / len(self.class_ids) if self.judged else None

    @property
    def band(self) -> float | None:
        """Accuracy above chance within which the split counts as at chance (luck included)."""
        if not self.judged:
            return None
        p = self.chance
        return max(LABEL_NOISE_CHANCE_MARGIN, LABEL_NOISE_Z * math.sqrt(p * (1 - p) / len(self)))

    @property
    def skill(self) -> float | None:
        """Balanced accuracy as a share of the way from chance to 100%."""
        if not self.judged:
            return None
        return (self.balanced_accuracy - self.chance) / (1 - self.chance)

    @property
    def at_chance(self) -> bool:
        return self.judged and self.balanced_accuracy <= self.chance + self.band

    @property
    def learned(self) -> bool:
        return self.judged and not self.at_chance and self.skill >= LABEL_NOISE_LEARNED

    @property
    def suspect_share(self) -> float | None:
        return len(self.suspects) / len(self) if self.judged else None

    def __len__(self) -> int:
        return len(self.rows)


def _sample(n: int, seed: int) -> np.ndarray:
    if n <= LABEL_NOISE_MAX_ROWS:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, LABEL_NOISE_MAX_ROWS, replace=False))


def out_of_fold(x: np.ndarray | None, y: np.ndarray | None, seed: int = 0) -> SplitResult:
    """Out-of-fold probabilities of a logistic-regression head, then the confident-learning
    suspects, on at most ``LABEL_NOISE_MAX_ROWS`` rows; classes with too few rows left out."""
    if x is None or y is None or len(y) == 0:
        return SplitResult(False, "no images")
    x = np.asarray(x)
    y = np.asarray(y).astype(np.int64).reshape(-1)
    if len(x) != len(y):
        raise ValueError(f"{len(x)} feature rows but {len(y)} labels")
    values, counts = np.unique(y, return_counts=True)
    kept = values[counts >= LABEL_NOISE_MIN_PER_CLASS]
    skipped = [int(v) for v in values[counts < LABEL_NOISE_MIN_PER_CLASS]]
    if len(kept) < 2:
        reason = (
            "one class only"
            if len(values) < 2
            else f"fewer than {LABEL_NOISE_MIN_PER_CLASS} images in all but one class"
        )
        return SplitResult(False, reason, skipped_classes=skipped)
    candidates = np.flatnonzero(np.isin(y, kept))
    rows = candidates[_sample(len(candidates), seed)]
    # Sampling may leave a class below the minimum again (only with thousands of classes).
    values, counts = np.unique(y[rows], return_counts=True)
    rows = rows[np.isin(y[rows], values[counts >= LABEL_NOISE_MIN_PER_CLASS])]
    classes = np.unique(y[rows])
    if len(classes) < 2:
        return SplitResult(False, "too few images per class", skipped_classes=skipped)
    labels = np.searchsorted(classes, y[rows])
    features = np.nan_to_num(x[rows].reshape(len(rows), -1).astype(np.float64), posinf=0, neginf=0)
    folds = int(min(LABEL_NOISE_FOLDS, np.bincount(labels).min()))
    head = make_pipeline(StandardScaler(), LogisticRegression(C=HEAD_C, max_iter=HEAD_MAX_ITER))
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    # One BLAS thread: the matrices are small, and idle threads spinning next to a training
    # process (or on 2 busy cores) made each fit 5-10x slower in wall time.
    if features.shape[1] == 0:
        return SplitResult(False, "no feature columns", skipped_classes=skipped)
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", RuntimeWarning)  # constant columns after scaling
        probabilities = cross_val_predict(head, features, labels, cv=cv, method="predict_proba")
    guess = probabilities.argmax(axis=1)
    recalls = [float(np.mean(guess[labels == j] == j)) for j in range(len(classes))]
    return SplitResult(
        True,
        rows=rows,
        labels=labels,
        probabilities=probabilities,
        class_ids=classes,
        folds=folds,
        skipped_classes=skipped,
        accuracy=_round(np.mean(guess == labels)),
        balanced_accuracy=_round(np.mean(recalls)),
        suspects=label_issues(labels, probabilities),
        confident=confident_classes(labels, probabilities),
    )


# -- the check ---------------------------------------------------------------------------------


def label_noise_check(
    train_x: np.ndarray,
    train_y: np.ndarray,
    val_x: np.ndarray | None,
    val_y: np.ndarray | None,
    class_names: list[str],
    train_files: list[str] | None = None,
    seed: int = 0,
) -> Finding:
    """``label_noise``: out-of-fold predictions on the features, the confident-learning rule.

    Args:
        train_x, train_y: Backbone features (N×D) and integer labels of the training split.
        val_x, val_y: The same for the validation split (None or empty: judged without it).
        class_names: Names of the label indices.
        train_files: The relative file of each training row, named in the suspects.
        seed: Row sample and fold shuffle.

    Returns:
        The finding; ``evidence["suspects"]`` lists the likeliest label errors (file, given,
        predicted, confidence, given_probability) and ``evidence["cause"]`` says what is blamed.
    """
    started = time.monotonic()
    if train_files is not None and len(train_files) != len(train_y):
        raise ValueError(f"{len(train_files)} training files for {len(train_y)} labels")
    train = out_of_fold(train_x, train_y, seed)
    val = out_of_fold(val_x, val_y, seed)
    suspects = [
        _suspect(train, i, class_names, train_files)
        for i in train.suspects[:LABEL_NOISE_SUSPECTS_SHOWN]
    ]
    evidence: dict[str, Any] = {
        "train_oof_accuracy": train.accuracy,
        "val_oof_accuracy": val.accuracy,
        "train_oof_balanced_accuracy": train.balanced_accuracy,
        "val_oof_balanced_accuracy": val.balanced_accuracy,
        "chance": _round(1 / len(class_names)) if class_names else None,
        "train_chance_band": _round(train.chance + train.band) if train.judged else None,
        "val_chance_band": _round(val.chance + val.band) if val.judged else None,
        "suspect_share_train": _maybe_round(train.suspect_share),
        "suspect_share_val": _maybe_round(val.suspect_share),
        "train_suspects": len(train.suspects),
        "val_suspects": len(val.suspects),
        "folds": {"train": train.folds, "val": val.folds},
        "rows_used": {"train": len(train), "val": len(val)},
        "rows": {
            "train": 0 if train_y is None else len(train_y),
            "val": 0 if val_y is None else len(val_y),
        },
        "skipped": {
            split: result.reason
            for split, result in (("train", train), ("val", val))
            if not result.judged
        },
        "skipped_classes": {
            split: [_name(class_names, c) for c in result.skipped_classes]
            for split, result in (("train", train), ("val", val))
            if result.skipped_classes
        },
        "suspects": suspects,
    }
    status, cause, measured, advice = _verdict(train, val)
    evidence["cause"] = cause
    evidence["seconds"] = round(time.monotonic() - started, 2)
    expected = (
        "labels predictable from the features (out-of-fold balanced accuracy clearly above "
        f"chance), and confident-learning suspects under {LABEL_NOISE_SHARE:.0%} of the training "
        "labels"
        + (
            f" or at most {LABEL_NOISE_EXCESS * 100:.0f} points above validation's share"
            if val.judged
            else ""
        )
    )
    return Finding(
        CHECK, status, measured=measured, expected=expected, advice=advice, evidence=evidence
    )


def _verdict(train: SplitResult, val: SplitResult) -> tuple[str, str | None, str, str]:
    """(status, cause, measured, advice) from the two splits' results."""
    if not train.judged:
        return (
            "ok",
            None,
            f"training labels not judged ({train.reason})",
            f"Nothing to judge: the training split has {train.reason}; see too_few_images.",
        )
    t_acc, t_chance = train.balanced_accuracy, train.chance
    at = f"{t_acc:.0%} (chance {t_chance:.0%})"
    if train.at_chance:
        if val.learned:
            return (
                "fail",
                "labels",
                f"training labels predicted at {at}, validation labels at "
                f"{val.balanced_accuracy:.0%}",
                "The training labels do not match the images: the features predict the "
                f"validation split's own labels ({val.balanced_accuracy:.0%}, out of fold) but "
                f"not the training split's ({t_acc:.0%}, chance {t_chance:.0%}). Images "
                "shuffled across the class folders, or folders filled from a wrong list, are "
                "the usual cause: check the training folders (the likeliest errors are listed "
                "as possible label errors) and train again once they match.",
            )
        if val.judged and not val.at_chance:
            return (
                "warn",
                "features_or_labels",
                f"training labels predicted at {at}, validation labels only at "
                f"{val.balanced_accuracy:.0%}",
                "The features do not predict the training labels, and the validation labels "
                f"only weakly ({val.balanced_accuracy:.0%}): either the features are too weak "
                "to tell, or the training labels do not match the images. Check a few "
                "training folders by eye, and use stronger features: pretrained weights "
                "(--weights imagenet), a local weights file (--weights PATH) or a larger "
                "--image-size.",
            )
        both = (
            f"validation labels at {val.balanced_accuracy:.0%}"
            if val.judged
            else "no validation split to compare"
        )
        return (
            "warn",
            "features",
            f"training labels predicted at {at}, {both}",
            "The features carry almost no class information, so the labels cannot be judged "
            "with them (nor learned well from them): random or unsuitable backbone weights, or "
            "images too small for the backbone. Use pretrained weights (--weights imagenet), a "
            "local weights file (--weights PATH), or a larger --image-size, then check again."
            + (
                ""
                if val.judged
                else " With no validation split to compare with, this cannot tell weak features "
                "from training labels that do not match the images: if the weights are "
                "pretrained already, look at a few training folders."
            ),
        )
    count, share = len(train.suspects), train.suspect_share
    measured = f"{count} of {len(train)} training labels look wrong ({share:.1%})"
    if val.judged:
        noisy = share >= LABEL_NOISE_SHARE and share - val.suspect_share >= _excess(train, val)
        reference = f", against {val.suspect_share:.1%} of the validation labels"
        caution = ""
    else:
        noisy = share >= LABEL_NOISE_SHARE and train.skill >= LABEL_NOISE_LEARNED
        reference = ""
        caution = (
            " With no validation split to compare with, weak features cannot be ruled out: "
            "look at a few of them before moving many."
        )
    if noisy:
        return (
            "warn",
            "noisy_labels",
            measured + reference,
            f"{count} of {len(train)} training labels ({share:.0%}) disagree confidently with "
            "what the features predict out of fold" + reference + ": more than the features' "
            "own confusions explain, so some training labels are likely wrong. Review the "
            "listed files (shown in the app as possible label errors, likeliest first), move "
            "misfiled images to their class folder or delete them, and train again." + caution,
        )
    tail = (
        f" {count} training labels ({share:.1%}) disagree with the features; they are listed "
        "as possible label errors, for curiosity."
        if count
        else ""
    )
    return "ok", None, measured + reference, "Nothing to do." + tail


def _excess(train: SplitResult, val: SplitResult) -> float:
    """How far the training share must exceed the validation share: ``LABEL_NOISE_EXCESS``, or
    ``LABEL_NOISE_Z`` standard errors of the difference of the two shares when that is more."""
    t, v = train.suspect_share, val.suspect_share
    spread = math.sqrt(t * (1 - t) / len(train) + v * (1 - v) / len(val))
    return max(LABEL_NOISE_EXCESS, LABEL_NOISE_Z * spread)


def _suspect(
    result: SplitResult,
    index: int,
    class_names: list[str],
    files: list[str] | None,
) -> dict[str, Any]:
    row = int(result.rows[index])
    given = int(result.labels[index])
    predicted = int(result.confident[index])
    p = result.probabilities[index]
    return {
        "row": row,
        "file": files[row] if files is not None else None,
        "given": _name(class_names, int(result.class_ids[given])),
        "predicted": _name(class_names, int(result.class_ids[predicted])),
        "confidence": _round(p[predicted]),
        "given_probability": _round(p[given]),
    }


def _name(class_names: list[str], index: int) -> str:
    return str(class_names[index]) if 0 <= index < len(class_names) else str(index)


def _round(value: float) -> float:
    return round(float(value), 4)


def _maybe_round(value: float | None) -> float | None:
    return None if value is None else _round(value)
