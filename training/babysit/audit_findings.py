"""The dataset audit's verdicts that decide what a score means, as findings.

Most disappointing fine-tunes are data problems no curve explains: validation images that copy
training ones (the score is too good to be true), one class the loss can ignore, or too few
images to learn or measure anything. These run before training (the ``check`` gate) and are
stored with every run, so each report starts with the data.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from training.babysit.findings import Finding
from training.babysit.thresholds import (
    FEW_IMAGES_PER_CLASS,
    IMBALANCE_FAIL,
    IMBALANCE_WARN,
    MIN_IMAGES_PER_CLASS,
)
from training.data.audit import AuditReport, Leak
from training.data.similarity import NEAR_MAX_PIXEL_DIFF

LEAK_PAIRS_SHOWN = 20
"""Leaked pairs kept in the evidence: enough to recognise the pattern, few enough to store."""
NOTHING = "Nothing to do."
_HELD_OUT = "; --val-split will hold some of them out"


def leakage(report: AuditReport) -> Finding:
    """``leakage``: images in val/test that copy (exactly or nearly) an image of an earlier split.

    The model has seen them, so their scores say how well it remembers, not how it generalises.
    Graded by the evidence: an *exact* copy (identical decoded pixels) is certain, so it fails.
    A *near* copy (perceptual hashes within 4 of 64 bits, and 32 px thumbnails within
    ``NEAR_MAX_PIXEL_DIFF`` = 10 levels once a uniform brightness shift is removed) is very
    likely the same photo re-encoded, resized or brightened: measured, such copies of real photos
    differ by at most 8.3, two distinct photos by at least 12.25, separately drawn look-alike
    shapes by 10-20 (their own noise). Look-alikes with almost no noise can still pass, so a near
    copy warns and leaves the call to a person. Hash matches whose thumbnails disagree are
    distinct look-alikes and are not reported at all (the user-reported false alarm).
    A dataset without split folders cannot leak yet: the train command's split keeps every
    duplicate group on one side.
    """
    leaks = list(report.leakage)
    kinds = Counter(leak.kind for leak in leaks)
    exact, near = kinds.get("exact", 0), kinds.get("near", 0)
    pairs = [
        {
            "original": leak.original,
            "original_split": leak.original_split,
            "copy": leak.copy,
            "copy_split": leak.copy_split,
            "kind": leak.kind,
            "hash_distance": leak.hash_distance,
            "pixel_diff": leak.pixel_diff,
        }
        for leak in sorted(leaks, key=lambda leak: leak.kind != "exact")[:LEAK_PAIRS_SHOWN]
    ]
    groups = len(report.exact_duplicates) + len(report.near_duplicates)
    evidence: dict[str, Any] = {
        "leaked": len(leaks),
        "exact": exact,
        "near": near,
        "pairs": pairs,
        "shown": len(pairs),
        "duplicate_groups": groups,
        "layout": report.layout,
        "near_max_pixel_diff": NEAR_MAX_PIXEL_DIFF,
    }
    expected = "no image shared across splits"
    if not leaks:
        if groups and report.layout != "splits":
            advice = (
                f"{groups} group(s) of duplicate images, no splits yet: the train command's split "
                f"keeps each group on one side, so none will leak into validation."
            )
        elif groups:
            advice = (
                f"{groups} group(s) of duplicate images, each within one split: no leakage, but "
                f"copies weigh double; remove them if they are accidental."
            )
        else:
            advice = NOTHING
        return Finding("leakage", "ok", 0, expected, advice, evidence)
    fix = (
        "merge the splits into one folder per class and let the train command split it: it keeps "
        "duplicates on one side"
    )
    parts = []
    if exact:
        parts.append(
            f"{_named(leaks, 'exact')} have exactly the same pixels as an image of an earlier "
            f"split, so their scores are too optimistic: delete those copies (pairs of kind "
            f"'exact' in the evidence), or {fix}."
        )
    if near:
        worst = max(leak.pixel_diff for leak in leaks if leak.kind == "near")
        parts.append(
            f"{_named(leaks, 'near')} nearly copy an image of an earlier split (perceptual hash "
            f"and thumbnails agree; pixel difference up to {worst:.1f} of at most "
            f"{NEAR_MAX_PIXEL_DIFF:g}): look at each pair of kind 'near' in the evidence and "
            f"delete the copies that are the same photo re-encoded, resized or edited"
            + ("." if exact else f", or {fix}.")
        )
    status = "fail" if exact else "warn"
    return Finding("leakage", status, len(leaks), expected, " ".join(parts), evidence)


def _named(leaks: list[Leak], kind: str, shown: int = 3) -> str:
    """'2 val image(s) (val/a.png, val/b.png)': how many copies of ``kind``, the first by name."""
    copies = [leak for leak in leaks if leak.kind == kind]
    splits = "/".join(sorted({leak.copy_split for leak in copies}))
    names = ", ".join(leak.copy for leak in copies[:shown])
    more = f" and {len(copies) - shown} more" if len(copies) > shown else ""
    return f"{len(copies)} {splits} image(s) ({names}{more})"


def _totals(report: AuditReport) -> dict[str, int]:
    """Readable images per class over every split."""
    totals: Counter[str] = Counter()
    for counts in report.counts.values():
        totals.update(counts)
    return {name: totals.get(name, 0) for name in report.classes}


def class_balance(report: AuditReport, class_weights: str | None = None) -> Finding | None:
    """``class_balance``: the largest class over the smallest (the audit's imbalance ratio).
    ``class_weights``: the run's ``--class-weights`` (None for a plain audit), so the advice
    says whether the loss is weighted already (see ``training.fit.class_weights``).

    Returns:
        None when no class has a readable image.
    """
    totals = {name: n for name, n in _totals(report).items() if n > 0}
    if not totals:
        return None
    smallest = min(totals, key=lambda c: (totals[c], c))
    largest = max(totals, key=lambda c: (totals[c], c))
    ratio = float(report.imbalance_ratio)
    evidence = {
        "counts": totals,
        "by_split": {split: dict(counts) for split, counts in report.counts.items()},
        "smallest": smallest,
        "largest": largest,
    }
    expected = f"largest/smallest ≤ {IMBALANCE_WARN:g}"
    if ratio <= IMBALANCE_WARN:
        return Finding("class_balance", "ok", round(ratio, 2), expected, NOTHING, evidence)
    if ratio > IMBALANCE_FAIL:
        status = "fail"
        advice = (
            f"{largest!r} has {ratio:.0f}× the images of {smallest!r}: the small class hardly "
            f"counts in the loss. {_weighted(class_weights)} Collect more images of "
            f"{smallest!r}, or drop the class."
        )
    else:
        status = "warn"
        advice = (
            f"{largest!r} has {ratio:.1f}× the images of {smallest!r}: a model can neglect the "
            f"small class and still score well. {_weighted(class_weights)} Judge per-class "
            f"recall (the run's per_class), or add images of {smallest!r}."
        )
    return Finding("class_balance", status, round(ratio, 2), expected, advice, evidence)


def _weighted(class_weights: str | None) -> str:
    """Whether ``train`` weights the loss of imbalanced classes with this setting, in words."""
    if class_weights == "none":
        return (
            "--class-weights none leaves the loss unweighted: train with --class-weights auto "
            "(the default) to weight it by inverse class frequency."
        )
    setting = class_weights or "auto"
    default = ", the default" if setting == "auto" else ""
    return (
        "The train command weights the loss by inverse class frequency "
        f"(--class-weights {setting}{default})."
    )


def _train_counts(report: AuditReport) -> tuple[dict[str, int], str]:
    """Training images per class, as the split will see them, and what was counted.

    Files outside a split folder train, as ``split_records`` does; without a val folder the
    train command holds ``--val-split`` of each class out later, so all of them are counted.
    """
    counts: Counter[str] = Counter()
    if report.layout == "splits":
        counts.update(report.counts.get("train", {}))
        counts.update(report.counts.get("all", {}))
        counted = "its train split"
        if "val" in report.counts:
            return {c: counts.get(c, 0) for c in report.classes}, counted
        counted += _HELD_OUT
    else:
        for split_counts in report.counts.values():
            counts.update(split_counts)
        counted = "all its images" + _HELD_OUT
    return {c: counts.get(c, 0) for c in report.classes}, counted


def too_few_images(report: AuditReport) -> Finding | None:
    """``too_few_images``: the smallest class's training images.

    Under ``MIN_IMAGES_PER_CLASS`` nothing reliable can be learned or measured for it (fail);
    under ``FEW_IMAGES_PER_CLASS`` fine-tuning works but the validation score is noisy (warn).
    An empty class folder (left out of training) warns too.

    Returns:
        None when the dataset has no class with a readable image.
    """
    per_class, counted = _train_counts(report)
    if not per_class:
        return None
    smallest = min(per_class, key=lambda c: (per_class[c], c))
    n = per_class[smallest]
    evidence = {
        "train_counts": per_class,
        "smallest": smallest,
        "counted": counted,
        "empty_classes": list(report.empty_classes),
    }
    expected = f"≥ {FEW_IMAGES_PER_CLASS} per class (at the very least {MIN_IMAGES_PER_CLASS})"
    if n < MIN_IMAGES_PER_CLASS:
        status = "fail"
        advice = (
            f"Class {smallest!r} has only {n} training image(s) ({counted}): too few to learn "
            f"or measure it. Add images ({FEW_IMAGES_PER_CLASS}+ per class is comfortable), or "
            f"merge or remove the class."
        )
    elif n < FEW_IMAGES_PER_CLASS:
        status = "warn"
        advice = (
            f"Class {smallest!r} has {n} training images ({counted}). Fine-tuning works, but "
            f"expect a noisy validation score: train less of the backbone (--unfreeze 1, or "
            f"--epochs-finetune 0), keep augmentation on, and add images where you can."
        )
    else:
        status, advice = "ok", NOTHING
    if report.empty_classes:
        names = ", ".join(repr(c) for c in report.empty_classes)
        empty = f"Class folder(s) {names} hold no images and are left out: fill or remove them."
        advice = empty if status == "ok" else f"{advice} {empty}"
        status = "warn" if status == "ok" else status
    return Finding("too_few_images", status, n, expected, advice, evidence)


def audit_findings(report: AuditReport, class_weights: str | None = None) -> list[Finding]:
    """``leakage``, ``class_balance`` and ``too_few_images`` for an audited dataset;
    ``class_weights`` is the run's ``--class-weights`` (None for a plain audit).

    Each runs whenever it has data to judge and returns ``ok`` when healthy, so a report lists
    every data check; a dataset without one readable image gets only ``leakage``.
    """
    found = [leakage(report), class_balance(report, class_weights), too_few_images(report)]
    return [f for f in found if f is not None]
