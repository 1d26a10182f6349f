"""``label_noise``: do the training labels match the images, how many look wrong, and which
ones are worth a second look?

On the backbone features computed once (seconds, no backbone pass), a linear head predicts
every example out of fold (stratified k-fold: it never saw the example it predicts), in the
training split and, for reference, within the validation split.

- **How good are the features?** Validation's own out-of-fold accuracy: labels the training
  split cannot have corrupted. ``evidence["features"]`` grades it: ``none`` (at chance),
  ``weak`` (under halfway from chance to 100%), ``partial``, ``good`` (``LABEL_NOISE_JUDGE``
  or more: good enough to name single labels).
- **How many training labels are wrong?** Under uniform flips of a share η, a head as accurate
  as the features (a) agrees with the training labels at a·(1 − η) + (1 − a)·η/(C − 1); the
  measured agreement gives η, with a standard error from both accuracies' binomial errors.
  Validation's head learns from fewer rows, so ``a`` is low rather than high, and the estimate
  errs toward zero (silence).
- **Which ones?** Only when the features are ``good`` and the estimate is clearly above zero:
  the examples whose most probable other class beats their given label by the widest margin
  (confident learning's "prune by noise rate", Northcutt, Jiang and Chuang, JAIR 2021), as many
  as the lower end of the estimate. On a clean set the estimate sits at zero, so nothing is
  named, whatever the features' own error.

The verdict: training labels at chance while validation's are clearly predictable fail (the
labels do not match the images); both at chance warn about the features (the labels cannot be
judged); an estimated share of wrong labels clearly above zero and at least
``LABEL_NOISE_SHARE`` warns; otherwise ``ok``, with any clear estimate and its labels stated.

The head is scikit-learn's linear discriminant analysis with Ledoit–Wolf shrinkage on
standardized features: a linear head that, unlike a logistic regression on a few hundred rows of
a thousand features, cannot fit the flipped labels of its own folds (on generated features with
20% flipped and validation 93% out of fold, precision 0.78 against 0.59 for a logistic
regression at C = 0.01). The ranking and confident learning's rule are in
:mod:`training.babysit.confident_learning` (cleanlab implements them too, but is AGPL-3.0).

This module holds one check (out-of-fold label agreement) and its evidence.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from training.babysit.advice import stronger_features
from training.babysit.confident_learning import (
    confident_joint,
    label_issues,
    margins,
    per_class_thresholds,
    worth_a_look,
)
from training.babysit.findings import Finding
from training.babysit.noise_estimate import NoiseEstimate, estimate_noise
from training.babysit.thresholds import (
    LABEL_NOISE_CHANCE_MARGIN,
    LABEL_NOISE_FOLDS,
    LABEL_NOISE_JUDGE,
    LABEL_NOISE_LEARNED,
    LABEL_NOISE_MAX_ROWS,
    LABEL_NOISE_MIN_PER_CLASS,
    LABEL_NOISE_SHARE,
    LABEL_NOISE_SHOWN_SHARE,
    LABEL_NOISE_SUSPECTS_SHOWN,
    LABEL_NOISE_Z,
)

CHECK = "label_noise"
__all__ = [  # the ranking's pieces are used through this module too (tests, benches)
    "CHECK",
    "NoiseEstimate",
    "confident_joint",
    "estimate_noise",
    "label_issues",
    "label_noise_check",
    "margins",
    "per_class_thresholds",
    "worth_a_look",
]


# -- out-of-fold predictions -------------------------------------------------------------------


@dataclass
class SplitResult:
    """Out-of-fold predictions for one split.

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

    def __len__(self) -> int:
        return len(self.rows)


def _sample(n: int, seed: int) -> np.ndarray:
    if n <= LABEL_NOISE_MAX_ROWS:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, LABEL_NOISE_MAX_ROWS, replace=False))


def linear_head(rows: int, classes: int):
    """Standardize, then LDA with Ledoit–Wolf shrinkage (see the module's docstring: why not a
    logistic regression). LDA needs more rows than classes to fit; on a split that small a
    strongly regularized logistic regression stands in."""
    if rows <= classes:
        return make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=100))
    return make_pipeline(
        StandardScaler(), LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto")
    )


def out_of_fold(x: np.ndarray | None, y: np.ndarray | None, seed: int = 0) -> SplitResult:
    """Out-of-fold probabilities of a linear head on at most ``LABEL_NOISE_MAX_ROWS`` rows;
    classes with too few rows left out."""
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
    if features.shape[1] == 0:
        return SplitResult(False, "no feature columns", skipped_classes=skipped)
    folds = int(min(LABEL_NOISE_FOLDS, np.bincount(labels).min()))
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    # One BLAS thread: the matrices are small, and idle threads spinning next to a training
    # process (or on 2 busy cores) made each fit 5-10x slower in wall time.
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore", RuntimeWarning)  # constant columns after scaling
        warnings.simplefilter("ignore", UserWarning)  # collinear variables
        warnings.simplefilter("ignore", ConvergenceWarning)
        fitted_rows = len(labels) - int(np.ceil(len(labels) / folds))  # the smallest fold's
        probabilities = cross_val_predict(
            linear_head(fitted_rows, len(classes)),
            features,
            labels,
            cv=cv,
            method="predict_proba",
        )
    probabilities = np.nan_to_num(probabilities, nan=1.0 / len(classes))
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
    )


# -- how many are wrong, and which -------------------------------------------------------------


def feature_grade(train: SplitResult, val: SplitResult) -> str | None:
    """``none`` / ``weak`` / ``partial`` / ``good``: validation's own out-of-fold balanced
    accuracy (the training split's when there is no validation split)."""
    split = val if val.judged else train
    if not split.judged:
        return None
    if split.at_chance:
        return "none"
    if not split.learned:
        return "weak"
    return "good" if split.balanced_accuracy >= LABEL_NOISE_JUDGE else "partial"


def validation_head_probabilities(
    train: SplitResult, train_x: np.ndarray, val: SplitResult, val_x: np.ndarray | None
) -> np.ndarray | None:
    """Probabilities of the training rows from a head trained on the validation split (None
    unless it holds the same classes). That head never saw a training label, so wrong training
    labels cannot pull it: its agreement with them measures their noise without the bias of a
    head fitted to them, and averaged with the out-of-fold probabilities it ranks them better
    (on generated features with 20% of the labels flipped and validation 93% out of fold, the
    top 18% by margin were 91% flipped with the average against 81% with the out-of-fold head
    alone)."""
    if not val.judged or val_x is None or not np.array_equal(val.class_ids, train.class_ids):
        return None
    rows_x = np.asarray(train_x)[train.rows].reshape(len(train), -1).astype(np.float64)
    val_rows_x = np.asarray(val_x)[val.rows].reshape(len(val), -1).astype(np.float64)
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.simplefilter("ignore", UserWarning)
        head = linear_head(len(val), len(val.class_ids))
        head.fit(np.nan_to_num(val_rows_x, posinf=0, neginf=0), val.labels)
        reference = head.predict_proba(np.nan_to_num(rows_x, posinf=0, neginf=0))
    return np.nan_to_num(reference, nan=1.0 / len(train.class_ids))


def _named(
    train: SplitResult,
    probabilities: np.ndarray,
    grade: str | None,
    estimate: NoiseEstimate | None,
):
    """(positions of the labels worth a second look, why none when empty)."""
    none = np.zeros(0, np.int64)
    if estimate is None:
        quality = (
            "the features predict validation's own labels at chance"
            if grade == "none"
            else "there is no validation split to measure the features' own error against"
        )
        return none, f"No single label is named: {quality}."
    if grade != "good":
        return none, (
            "No single label is named: the features predict validation's own labels at "
            f"{estimate.reference:.0%} out of fold, under the {LABEL_NOISE_JUDGE:.0%} needed to "
            "tell a wrong label from one of their own mistakes."
        )
    if not estimate.clear:
        return none, (
            "No single label is named: the training labels disagree with the features no more "
            "than the features' own error on validation explains."
        )
    count = round((estimate.rate - estimate.standard_error) * len(train))
    found = worth_a_look(probabilities, train.labels, count)
    if not len(found):
        return found, "No single label is named: no label disagrees clearly enough."
    return found, ""


# -- the check ---------------------------------------------------------------------------------


def label_noise_check(
    train_x: np.ndarray,
    train_y: np.ndarray,
    val_x: np.ndarray | None,
    val_y: np.ndarray | None,
    class_names: list[str],
    train_files: list[str] | None = None,
    seed: int = 0,
    settings: Mapping[str, Any] | None = None,
) -> Finding:
    """``label_noise``: out-of-fold agreement of the training labels with the features.

    Args:
        train_x, train_y: Backbone features (N×D) and integer labels of the training split.
        val_x, val_y: The same for the validation split (None or empty: judged without it).
        class_names: Names of the label indices.
        train_files: The relative file of each training row, named in the suspects.
        seed: Row sample and fold shuffle.
        settings: The run's config: advice on weak features starts from its weights.

    Returns:
        The finding. ``evidence["noise"]`` is the estimated share of wrong training labels with
        its range; ``evidence["suspects"]`` the labels worth a second look (file, given,
        predicted, confidence, given_probability, margin, rank, why), capped, with
        ``suspects_total`` and ``suspects_more``; ``suspects_reason`` says why there are none;
        ``features`` grades the features; ``cause`` says what is blamed.
    """
    started = time.monotonic()
    if train_files is not None and len(train_files) != len(train_y):
        raise ValueError(f"{len(train_files)} training files for {len(train_y)} labels")
    train = out_of_fold(train_x, train_y, seed)
    val = out_of_fold(val_x, val_y, seed)
    grade = feature_grade(train, val)
    reference = validation_head_probabilities(train, train_x, val, val_x) if train.judged else None
    if reference is None:
        probabilities, agreement = train.probabilities, None
    else:
        probabilities = (train.probabilities + reference) / 2
        agreement = float(np.mean(reference.argmax(axis=1) == train.labels))
    estimate = estimate_noise(train, val, agreement)
    named, why_none = (
        _named(train, probabilities, grade, estimate)
        if train.judged
        else (np.zeros(0, np.int64), f"No single label is named: {train.reason}.")
    )
    shown = min(LABEL_NOISE_SUSPECTS_SHOWN, max(1, math.ceil(LABEL_NOISE_SHOWN_SHARE * len(train))))
    evidence: dict[str, Any] = {
        "features": grade,
        "feature_quality": val.balanced_accuracy if val.judged else train.balanced_accuracy,
        "train_oof_accuracy": train.accuracy,
        "val_oof_accuracy": val.accuracy,
        "train_oof_balanced_accuracy": train.balanced_accuracy,
        "val_oof_balanced_accuracy": val.balanced_accuracy,
        "chance": _round(1 / len(class_names)) if class_names else None,
        "train_chance_band": _round(train.chance + train.band) if train.judged else None,
        "val_chance_band": _round(val.chance + val.band) if val.judged else None,
        "noise": estimate.to_dict() if estimate else None,
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
        "suspects": [
            _suspect(train, probabilities, position, rank, class_names, train_files)
            for rank, position in enumerate(named[:shown], start=1)
        ],
        "suspects_total": len(named),
        "suspects_more": max(0, len(named) - shown),
        "suspects_reason": why_none,
    }
    status, cause, measured, advice = _verdict(train, val, estimate, len(named), settings)
    evidence["cause"] = cause
    evidence["seconds"] = round(time.monotonic() - started, 2)
    expected = (
        "labels predictable from the features (out-of-fold balanced accuracy clearly above "
        f"chance), and an estimated share of wrong training labels under {LABEL_NOISE_SHARE:.0%}"
    )
    return Finding(
        CHECK, status, measured=measured, expected=expected, advice=advice, evidence=evidence
    )


def _verdict(
    train: SplitResult,
    val: SplitResult,
    estimate: NoiseEstimate | None,
    named: int,
    settings: Mapping[str, Any] | None = None,
) -> tuple[str, str | None, str, str]:
    """(status, cause, measured, advice) from the two splits' results and the estimate;
    ``settings`` (the run's config) shape the advice on weak features."""
    remedy = f"{stronger_features(settings)}, or a larger --image-size"
    if not train.judged:
        return (
            "ok",
            None,
            f"training labels not judged ({train.reason})",
            f"Nothing to judge: the training split has {train.reason}; see too_few_images.",
        )
    t_acc, t_chance = train.balanced_accuracy, train.chance
    at = f"{t_acc:.0%} (chance {t_chance:.0%})"
    # Shuffled labels are wrong at (C - 1)/C; at least half that, surely, is "most of them".
    most = (len(train.class_ids) - 1) / (2 * len(train.class_ids))
    if train.at_chance and val.learned and (estimate is None or estimate.low >= most):
        return (
            "fail",
            "labels",
            f"training labels predicted at {at}, validation labels at {val.balanced_accuracy:.0%}",
            "The training labels do not match the images: the features predict the "
            f"validation split's own labels ({val.balanced_accuracy:.0%}, out of fold) but "
            f"not the training split's ({t_acc:.0%}, chance {t_chance:.0%}). Images "
            "shuffled across the class folders, or folders filled from a wrong list, are "
            "the usual cause: check the training folders (labels worth a second look are "
            "listed) and train again once they match.",
        )
    if train.at_chance and not val.learned:  # (with validation learned: the estimate below)
        if val.judged and not val.at_chance:
            return (
                "warn",
                "features_or_labels",
                f"training labels predicted at {at}, validation labels only at "
                f"{val.balanced_accuracy:.0%}",
                "The features do not predict the training labels, and the validation labels "
                f"only weakly ({val.balanced_accuracy:.0%}): either the features are too weak "
                "to tell, or the training labels do not match the images. Check a few "
                f"training folders by eye, and use stronger features: {remedy}.",
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
            f"images too small for the backbone. Use {remedy}, then check again."
            + (
                ""
                if val.judged
                else " With no validation split to compare with, this cannot tell weak features "
                "from training labels that do not match the images: if the weights are "
                "pretrained already, look at a few training folders."
            ),
        )
    if estimate is None:
        return (
            "ok",
            None,
            f"training labels predicted at {at}; no validation split to compare",
            "Nothing to do. With no validation split, the features' own error cannot be told "
            "from wrong training labels, so no share of wrong labels is estimated.",
        )
    share = (
        f"about {estimate.rate:.0%} of the training labels look wrong "
        f"({estimate.low:.0%}–{estimate.high:.0%})"
    )
    measured = (
        f"{share}: the features agree with {estimate.agreement:.0%} of them, and with "
        f"{estimate.reference:.0%} of validation's own labels (out of fold)"
    )
    listed = (
        f" The {named} labels worth a second look are listed, likeliest first: if one is wrong, "
        "move the image to its class folder."
        if named
        else " The features are not accurate enough to say which ones (their own mistakes "
        "would crowd the list): look through the training folders by eye, or check with "
        "stronger features to have them listed."
    )
    if estimate.clear and estimate.rate >= LABEL_NOISE_SHARE:
        return (
            "warn",
            "noisy_labels",
            measured,
            f"Some training labels are likely wrong: {share}, more than the features' own "
            f"error on validation explains.{listed} Then train again.",
        )
    if estimate.clear:
        return (
            "ok",
            None,
            measured,
            f"Nothing to do: {share}, a usual level for labels set by hand." + listed,
        )
    if not val.learned:
        return (
            "warn",
            "weak_features",
            f"features weak: validation's own labels predicted at {val.balanced_accuracy:.0%} "
            f"out of fold (chance {val.chance:.0%}); the training labels disagree no more than "
            "that explains",
            "The features separate these classes only weakly, so the head cannot learn them "
            "well and single labels cannot be judged: random or unsuitable backbone weights, "
            f"or images too small for the backbone. Use {remedy}.",
        )
    return (
        "ok",
        None,
        f"no more disagreement than the features' own error: they agree with "
        f"{estimate.agreement:.0%} of the training labels and {estimate.reference:.0%} of "
        "validation's (out of fold)",
        "Nothing to do: the training labels disagree with the features no more than the "
        "features' own error on validation explains.",
    )


def _suspect(
    result: SplitResult,
    probabilities: np.ndarray,
    position: int,
    rank: int,
    class_names: list[str],
    files: list[str] | None,
) -> dict[str, Any]:
    row = int(result.rows[position])
    given = int(result.labels[position])
    p = probabilities[position]
    others = p.copy()
    others[given] = -np.inf
    predicted = int(others.argmax())
    given_name = _name(class_names, int(result.class_ids[given]))
    predicted_name = _name(class_names, int(result.class_ids[predicted]))
    return {
        "row": row,
        "file": files[row] if files is not None else None,
        "given": given_name,
        "predicted": predicted_name,
        "confidence": _round(p[predicted]),
        "given_probability": _round(p[given]),
        "margin": _round(p[predicted] - p[given]),
        "rank": rank,
        "why": f"filed as {given_name}; heads that never saw its label give {predicted_name} "
        f"{p[predicted]:.0%} and {given_name} {p[given]:.0%} (rank {rank} of "
        f"{len(result)} by margin)",
    }


def _name(class_names: list[str], index: int) -> str:
    return str(class_names[index]) if 0 <= index < len(class_names) else str(index)


def _round(value: float) -> float:
    return round(float(value), 4)
