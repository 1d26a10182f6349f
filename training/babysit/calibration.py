"""How far to trust a probability: expected calibration error and temperature scaling, in NumPy.

A network trained to a low loss is usually over-confident: of the images it calls "95% cat",
fewer than 95% are cats. The expected calibration error (ECE) measures that on validation:
the top-label confidences are put in 15 equal-width bins and the gap between each bin's mean
confidence and its accuracy is averaged, weighted by the bin's share of the images (Guo et al.,
"On Calibration of Modern Neural Networks", ICML 2017). Temperature scaling, from the same
paper, divides the logits by one scalar T fitted on validation by minimising the negative
log-likelihood: one parameter cannot overfit a few hundred images, and the argmax, hence the
accuracy, does not move. The NLL is convex in 1/T, so a bounded golden-section search on log T
finds its minimum without SciPy.

Pure functions of logits and labels: ``training.fit.calibrate`` computes the logits and writes
T into the saved model; the CLI, ``--json``, the app and the model card read the summary built
here (``ece_before``, ``ece_after``, ``temperature``, ``calibration``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

ECE_BINS = 15
"""Equal-width confidence bins, as in Guo et al. (2017) and Ludwig's calibration plots."""
MIN_IMAGES = 20
"""Fewer validation images than this and neither the ECE (15 bins) nor T means anything: the
calibration is skipped, with the reason, and the probabilities are kept raw."""
TEMPERATURE_BOUNDS = (1e-3, 1e3)
"""Where the search looks. With one validation mistake or more, the NLL has its minimum inside
(0, ∞) (without any, it falls for ever as T shrinks: that case is skipped); the bounds only keep
the arithmetic finite, and are wide because the logits' scale is the model's own: a barely
trained head on random features has logits near 0.1 and needs T near 0.02."""
EVIDENCE = 3.841
"""The likelihood-ratio statistic 2·n·(NLL at T = 1 − NLL at the fitted T) a temperature must
pass to be applied: the chi-square with one degree of freedom at 5%. Below it the validation
images cannot tell the fitted T from 1, and applying it moves the probabilities by noise (on the
demo classes, 64 images: T = 0.83 lowered their NLL by 0.003 and raised the ECE 10.7% → 12.7%)."""
SUMMARY_KEYS = ("ece_before", "ece_after", "temperature", "calibration")
"""What a run's summary (and ``--json``) carries; a search copies them from its best fine-tune."""


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of ``logits / temperature`` in float64 (stable for large logits)."""
    return np.exp(log_softmax(logits, temperature))


def log_softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    scaled = np.asarray(logits, dtype=np.float64) / temperature
    scaled = scaled - scaled.max(axis=1, keepdims=True)
    return scaled - np.log(np.exp(scaled).sum(axis=1, keepdims=True))


def negative_log_likelihood(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    """Mean cross-entropy of the true labels under ``softmax(logits / temperature)``."""
    rows = np.arange(len(labels))
    return float(-log_softmax(logits, temperature)[rows, np.asarray(labels)].mean())


def reliability_bins(
    probabilities: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS
) -> list[dict[str, Any]]:
    """The reliability diagram's data: per equal-width bin of top-label confidence (right edge
    included), its edges, how many images fall in it, their mean confidence and accuracy (None
    for an empty bin)."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == np.asarray(labels)
    index = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
    out = []
    for b in range(bins):
        inside = index == b
        count = int(inside.sum())
        out.append(
            {
                "low": b / bins,
                "high": (b + 1) / bins,
                "count": count,
                "confidence": float(confidence[inside].mean()) if count else None,
                "accuracy": float(correct[inside].mean()) if count else None,
            }
        )
    return out


def ece_of_bins(bins: list[dict[str, Any]]) -> float:
    """Σ (share of images in the bin) · |accuracy − confidence|."""
    total = sum(b["count"] for b in bins)
    if total == 0:
        return math.nan
    return float(
        sum(b["count"] * abs(b["accuracy"] - b["confidence"]) for b in bins if b["count"]) / total
    )


def expected_calibration_error(
    probabilities: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS
) -> float:
    """Top-label ECE over ``bins`` equal-width confidence bins (0 = perfectly calibrated)."""
    return ece_of_bins(reliability_bins(probabilities, labels, bins))


def fit_temperature(
    logits: np.ndarray, labels: np.ndarray, bounds: tuple[float, float] = TEMPERATURE_BOUNDS
) -> float:
    """The T in ``bounds`` that minimises the validation NLL: golden-section search on log T
    (the NLL is convex in 1/T, so unimodal in log T); T = 1 is kept unless it is beaten."""
    ratio = (math.sqrt(5) - 1) / 2
    low, high = math.log(bounds[0]), math.log(bounds[1])

    def nll(log_t: float) -> float:
        return negative_log_likelihood(logits, labels, math.exp(log_t))

    a, b = high - ratio * (high - low), low + ratio * (high - low)
    fa, fb = nll(a), nll(b)
    for _ in range(80):  # the bracket shrinks to 0.618**80 of log(1e6): below float noise
        if fa < fb:
            high, b, fb = b, a, fa
            a = high - ratio * (high - low)
            fa = nll(a)
        else:
            low, a, fa = a, b, fb
            b = low + ratio * (high - low)
            fb = nll(b)
    best = (low + high) / 2
    return math.exp(best) if nll(best) < nll(0.0) else 1.0


def calibrate(
    logits: np.ndarray, labels: np.ndarray, *, enabled: bool = True, min_images: int = MIN_IMAGES
) -> dict[str, Any]:
    """The summary's calibration record from validation logits: the ECE before, the fitted
    temperature and the ECE after (None where not calibrated), and under ``calibration`` the
    status (``calibrated``, ``off``, ``skipped``), the reason when not calibrated, the images,
    the NLL and the reliability bins before and after. A fitted T is applied only where the
    validation likelihood shows it (:data:`EVIDENCE`)."""
    logits, labels = np.asarray(logits, dtype=np.float64), np.asarray(labels)
    images = len(labels)
    record: dict[str, Any] = {"status": "skipped", "images": images, "bins": ECE_BINS}
    out = {"ece_before": None, "ece_after": None, "temperature": 1.0, "calibration": record}
    if images < min_images:
        have = (
            f"only {images} validation image{'s' * (images != 1)}"
            if images
            else "no validation images"
        )
        record["reason"] = (
            f"{have}; the error over {ECE_BINS} bins and a temperature need at least "
            f"{min_images} (raise --val-split, or add images to val/)"
        )
        return out
    before = reliability_bins(softmax(logits), labels)
    out["ece_before"] = ece_of_bins(before)
    record.update(nll_before=negative_log_likelihood(logits, labels, 1.0), before=before)
    if not enabled:
        record.update(status="off", reason="turned off (--no-calibrate)")
        return out
    if np.all(logits.argmax(axis=1) == labels):
        record["reason"] = (
            "every validation image is predicted right, so the likelihood only asks for ever "
            "sharper probabilities; more (or harder) validation images are needed to fit it"
        )
        return out
    temperature = fit_temperature(logits, labels)
    nll_after = negative_log_likelihood(logits, labels, temperature)
    evidence = 2 * images * (record["nll_before"] - nll_after)
    record.update(fitted=temperature, likelihood_ratio=evidence)
    if evidence < EVIDENCE:
        record["reason"] = (
            f"the {images} validation images show no miscalibration a temperature fixes: the "
            f"best, {temperature:.3g}, improves their likelihood by a ratio statistic of "
            f"{evidence:.2f}, under {EVIDENCE:.2f} (the 5% level)"
        )
        return out
    after = reliability_bins(softmax(logits, temperature), labels)
    out.update(temperature=temperature, ece_after=ece_of_bins(after))
    record.update(status="calibrated", nll_after=nll_after, after=after)
    return out


def held_out(
    logits: np.ndarray, labels: np.ndarray, temperature: float, min_images: int = MIN_IMAGES
) -> dict[str, Any] | None:
    """The ECE before and after on images the temperature was not fitted on (the test split),
    or None when there are too few of them to say."""
    if len(labels) < min_images:
        return None
    return {
        "images": len(labels),
        "ece_before": expected_calibration_error(softmax(logits), labels),
        "ece_after": expected_calibration_error(softmax(logits, temperature), labels),
    }


def calibration_line(summary: dict[str, Any]) -> str | None:
    """The CLI's line about calibration after a run, or None for a run from before it."""
    record = summary.get("calibration")
    if not isinstance(record, dict):
        return None
    images = f"{record.get('images', 0)} validation images"
    before = summary.get("ece_before")
    if record.get("status") == "calibrated":
        line = (
            f"calibration: expected calibration error {before:.1%} → {summary['ece_after']:.1%} "
            f"on {images} (temperature {summary['temperature']:.3g})"
        )
        test = record.get("test")
        if test:
            line += f"; on {test['images']} test images {test['ece_before']:.1%} → "
            line += f"{test['ece_after']:.1%}"
        return line
    measured = (
        f": expected calibration error {before:.1%} on {images}" if before is not None else ""
    )
    why = record.get("reason", "")
    return f"calibration {record.get('status', 'skipped')}{measured}; {why}; probabilities kept raw"
