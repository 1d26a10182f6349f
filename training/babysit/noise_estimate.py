"""How many training labels are wrong: an estimate with its range, from two accuracies.

Under uniform flips of a share η, a head as accurate as the features (a, validation's own
out-of-fold accuracy: labels the training split cannot have corrupted) agrees with
a·(1 − η) + (1 − a)·η/(C − 1) of the training labels. The measured agreement (a head trained on
validation, predicting the training rows) gives η; the standard error comes from both
accuracies' binomial errors. Validation's head learns from fewer rows, so ``a`` is low rather
than high and the estimate errs toward zero (silence).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from training.babysit.thresholds import LABEL_NOISE_Z


class SplitResult(Protocol):
    """What the estimate reads of ``label_noise.SplitResult`` (one split's out-of-fold
    predictions), without importing the check that uses it."""

    judged: bool
    accuracy: float | None
    class_ids: np.ndarray

    @property
    def at_chance(self) -> bool: ...

    def __len__(self) -> int: ...


@dataclass(frozen=True)
class NoiseEstimate:
    """The estimated share of wrong training labels, ``low``..``high`` its ±``LABEL_NOISE_Z``
    standard-error range (clipped to [0, 1]); ``agreement`` and ``reference`` the accuracies it
    comes from."""

    rate: float
    low: float
    high: float
    standard_error: float
    agreement: float
    reference: float

    @property
    def clear(self) -> bool:
        """Clearly above zero: the features' own error does not explain the disagreement."""
        return self.low > 0

    def to_dict(self) -> dict[str, float]:
        return {k: _round(v) for k, v in dataclasses.asdict(self).items()}


def estimate_noise(
    train: SplitResult, val: SplitResult, agreement: float | None = None
) -> NoiseEstimate | None:
    """η from ``agreement = a·(1 − η) + (1 − a)·η/(C − 1)``, ``a`` validation's own out-of-fold
    accuracy and ``agreement`` the share of training labels a head trained on validation
    predicts (the out-of-fold training accuracy when not given); None without a judged
    validation split or with features at chance there."""
    if not (train.judged and val.judged) or val.at_chance:
        return None
    classes = len(train.class_ids)
    agreement = float(train.accuracy if agreement is None else agreement)
    reference = float(val.accuracy)

    def eta(a_t: float, a_r: float) -> float:
        return (a_r - a_t) / (a_r - (1 - a_r) / (classes - 1))

    if reference - (1 - reference) / (classes - 1) <= 0:
        return None
    rate = eta(agreement, reference)
    step = 1e-4
    d_reference = (eta(agreement, reference + step) - rate) / step
    d_agreement = (eta(agreement + step, reference) - rate) / step
    se_t = math.sqrt(max(agreement * (1 - agreement), 0.25 / len(train)) / len(train))
    se_r = math.sqrt(max(reference * (1 - reference), 0.25 / len(val)) / len(val))
    error = math.hypot(d_agreement * se_t, d_reference * se_r)
    return NoiseEstimate(
        rate=min(max(rate, 0.0), 1.0),
        low=min(max(rate - LABEL_NOISE_Z * error, 0.0), 1.0),
        high=min(max(rate + LABEL_NOISE_Z * error, 0.0), 1.0),
        standard_error=error,
        agreement=agreement,
        reference=reference,
    )


def _round(value: float) -> float:
    return round(float(value), 4)
