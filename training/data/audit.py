"""Look at every image once before training: what is broken, duplicated, leaked or lopsided.

Most disappointing fine-tunes are data problems (a val set that copies the train set, one class
with three images, a folder of unreadable files) that no training curve explains. The audit
reads each file once (hash, decode, perceptual hash), reports problems by file name, and gives
a verdict: training refuses data it cannot learn from, and warns about the rest.
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
import sys
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import imagehash
import numpy as np
from tqdm import tqdm

from training.data.images import open_rgb
from training.data.scan import ScannedDataset, ScannedFile
from training.errors import ImageError, UnusableDatasetError

MAX_FILE_BYTES = 512 * 1024**2
"""Files larger than this are reported unreadable instead of being read into memory."""
SMALL_IMAGE_PX = 32
IMBALANCE_WARN = 3.0
_SPLIT_RANK = {"train": 0, "val": 1, "test": 2}
_LIST_LIMIT = 20
MAX_NEAR_PAIRS = 2_000_000
"""Look-alike pairs kept in memory at most (32 MB); beyond it the near search gives up."""
LOOKALIKE_MIN, LOOKALIKE_SHARE = 20, 0.1
"""A near group over max(20, 10% of images) is look-alike content, not duplicated files."""


@dataclass
class FileRecord:
    """What the audit learnt about one file; ``error`` is set (and the rest empty) if unreadable."""

    rel: str
    path: Path
    label: str
    split: str | None
    sha256: str
    phash: str | None
    width: int
    height: int
    error: str | None = None


@dataclass
class Verdict:
    """Whether training may start (``reasons`` say why not) and what deserves a look."""

    trainable: bool
    reasons: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass
class AuditReport:
    """Everything the audit found; ``to_dict`` is what the run store and the app keep."""

    root: Path
    layout: str
    classes: list[str]
    records: list[FileRecord]
    counts: dict[str, dict[str, int]]
    size_stats: dict[str, dict[str, float]]
    unreadable: list[tuple[str, str]]
    exact_duplicates: list[list[str]]
    near_duplicates: list[list[str]]
    leakage: list[tuple[str, str, str, str, str]]
    cross_class_duplicates: list[list[str]]
    imbalance_ratio: float
    ignored: list[str]
    skipped: list[tuple[str, str]]
    empty_classes: list[str]
    verdict: Verdict
    notes: list[str] = field(default_factory=list)

    def readable(self) -> list[FileRecord]:
        """Records that decoded: the only ones training and the cache use."""
        return [r for r in self.records if r.error is None]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (paths as strings, tuples as lists)."""
        return json.loads(json.dumps(asdict(self), default=str))


def _inspect(file: ScannedFile) -> FileRecord:
    record = FileRecord(file.rel, file.path, file.label, file.split, "", None, 0, 0)
    try:
        size = file.path.stat().st_size
        if size > MAX_FILE_BYTES:
            record.error = f"file is {size:,} bytes, over {MAX_FILE_BYTES:,}; downscale it"
            return record
        data = file.path.read_bytes()
    except OSError as exc:
        record.error = f"cannot be read ({exc.strerror or exc}); check permissions"
        return record
    record.sha256 = hashlib.sha256(data).hexdigest()
    try:
        image = open_rgb(data)
    except ImageError as exc:
        record.error = exc.reason
        return record
    record.width, record.height = image.size
    try:
        record.phash = str(imagehash.phash(image))
    except (ValueError, MemoryError):  # near-duplicate search skips it; the image is fine
        record.phash = None
    return record


def _popcount(x: np.ndarray) -> np.ndarray:
    if hasattr(np, "bitwise_count"):  # NumPy >= 2.0
        return np.bitwise_count(x)
    return np.unpackbits(x.view(np.uint8), axis=-1).reshape(*x.shape, 64).sum(axis=-1)


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
        distance = _popcount(block[:, None] ^ hashes[None, start:])
        i, j = np.nonzero(distance <= threshold)
        keep = j > i  # both index from ``start``
        found.append(np.stack([i[keep] + start, j[keep] + start], axis=1).astype(np.int64))
        total += len(found[-1])
        if max_pairs is not None and total > max_pairs:
            raise TooManyPairsError(total)
    return np.concatenate(found) if found else np.zeros((0, 2), dtype=np.int64)


def _components(n: int, pairs: np.ndarray) -> np.ndarray:
    """Connected-component label (its smallest node) of each node, by vectorised propagation."""
    labels = np.arange(n)
    a, b = pairs[:, 0], pairs[:, 1]
    while len(pairs):
        before = labels
        low = np.minimum(labels[a], labels[b])
        labels = labels.copy()
        np.minimum.at(labels, a, low)
        np.minimum.at(labels, b, low)
        labels = labels[labels]  # pointer jumping: labels only ever point to smaller nodes
        if np.array_equal(labels, before):
            break
    return labels


def _rank(record: FileRecord) -> int:
    return _SPLIT_RANK.get(record.split or "", 3)


def _near_search(
    readable: list[FileRecord], threshold: int, splits: bool
) -> tuple[list[list[int]], dict[int, tuple[str, str, str, str, str]], list[str]]:
    """Near-duplicate groups, near leaks (by later file) and notes, over perceptual hashes.

    Identical hashes collapse to one node first, so a folder of near-identical frames costs a
    few nodes, not n² pairs. Records are in rel order, so an index is also a rel rank.
    """
    hashed = np.array([i for i, r in enumerate(readable) if r.phash], dtype=np.int64)
    if len(hashed) < 2:
        return [], {}, []
    codes = np.array([int(readable[i].phash, 16) for i in hashed], dtype=np.uint64)
    unique, node = np.unique(codes, return_inverse=True)
    try:
        pairs = near_pairs(unique, threshold, MAX_NEAR_PAIRS)
    except TooManyPairsError:
        return [], {}, [f"near-duplicate search skipped: over {MAX_NEAR_PAIRS:,} similar pairs"]
    members: dict[int, list[int]] = defaultdict(list)
    labels = _components(len(unique), pairs)[node]
    for record, label in zip(hashed.tolist(), labels.tolist(), strict=True):
        members[label].append(record)
    groups, notes, lookalike = [], [], set()
    too_big = max(LOOKALIKE_MIN, LOOKALIKE_SHARE * len(readable))
    for group in members.values():
        if len(group) < 2 or len({readable[i].sha256 for i in group}) < 2:
            continue
        if len(group) > too_big:  # chained look-alikes (a fixed camera): not one duplicate
            lookalike.update(group)
            notes.append(
                f"{len(group)} images look alike in a chain of perceptual hashes; not treated as "
                f"duplicates (the split could not hold any of them out)"
            )
            continue
        groups.append(group)
    leaks: dict[int, tuple[str, str, str, str, str]] = {}
    if splits:  # best (earliest split, then rel) file in each node's neighbourhood
        rank = np.array([_rank(readable[i]) for i in hashed], dtype=np.int64)
        key, n = rank * len(readable) + hashed, len(readable)
        best = np.full(len(unique), np.iinfo(np.int64).max)
        np.minimum.at(best, node, key)
        near = best.copy()
        np.minimum.at(near, pairs[:, 0], best[pairs[:, 1]])
        np.minimum.at(near, pairs[:, 1], best[pairs[:, 0]])
        partner = near[node]
        for k in np.nonzero(partner // n < rank)[0].tolist():
            mine, theirs = readable[hashed[k]], readable[int(partner[k] % n)]
            if mine.sha256 != theirs.sha256 and int(hashed[k]) not in lookalike:
                leaks[int(hashed[k])] = (theirs.rel, theirs.split, mine.rel, mine.split, "near")
    return groups, leaks, notes


def _leakage(
    records: list[FileRecord],
    exact: list[list[int]],
    near: dict[int, tuple[str, str, str, str, str]],
) -> list[tuple[str, str, str, str, str]]:
    """One entry per file that also appears (exactly or nearly) in an earlier split."""
    leaks = dict(near)
    for group in exact:
        ordered = sorted(group, key=lambda i: (_rank(records[i]), i))
        anchor = records[ordered[0]]
        for i in ordered[1:]:
            if records[i].split != anchor.split:
                leaks[i] = (anchor.rel, anchor.split, records[i].rel, records[i].split, "exact")
    return [leaks[i] for i in sorted(leaks, key=lambda i: (_rank(records[i]), i))]


def _size_stats(readable: list[FileRecord]) -> dict[str, dict[str, float]]:
    stats = {}
    for axis in ("width", "height"):
        values = [getattr(r, axis) for r in readable] or [0]
        stats[axis] = {"min": min(values), "median": statistics.median(values), "max": max(values)}
    return stats


def _counts(records: list[FileRecord], layout: str) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {}
    for r in records:
        split = r.split if layout == "splits" and r.split else "all"
        counts.setdefault(split, {}).setdefault(r.label, 0)
        counts[split][r.label] += 1
    ordered = sorted(counts, key=lambda s: _SPLIT_RANK.get(s, 3))
    return {s: dict(sorted(counts[s].items())) for s in ordered}


def _verdict(report: AuditReport, scanned: ScannedDataset) -> Verdict:
    readable = report.readable()
    per_class = Counter(r.label for r in readable)
    reasons, warnings = [], []
    if not readable:
        reasons.append(
            f"no readable images in {report.root}; expected one sub-folder per class with "
            f"JPEG/PNG images in it"
        )
    elif len(per_class) < 2:
        only = ", ".join(repr(c) for c in per_class)
        reasons.append(
            f"only one class ({only}) has readable images; a classifier needs at least 2 "
            f"classes: add one sub-folder of images per class"
        )
    for name, count in sorted(per_class.items()):
        if count < 2:
            reasons.append(
                f"class {name!r} has only {count} readable image; add at least one more "
                f"(one to train on, one to validate)"
            )
    if report.unreadable:
        warnings.append(f"{len(report.unreadable)} unreadable file(s) will be left out")
    if report.exact_duplicates:
        n = sum(len(g) for g in report.exact_duplicates)
        warnings.append(f"{len(report.exact_duplicates)} group(s) of identical files ({n} files)")
    if report.near_duplicates:
        warnings.append(f"{len(report.near_duplicates)} group(s) of near-duplicate images")
    if report.leakage:
        warnings.append(
            f"{len(report.leakage)} image(s) in val/test also appear in an earlier split "
            f"(leakage: validation scores will be too optimistic)"
        )
    if report.cross_class_duplicates:
        warnings.append(
            f"{len(report.cross_class_duplicates)} image(s) filed under two or more classes "
            f"(label conflict: decide which class each belongs to)"
        )
    if report.imbalance_ratio > IMBALANCE_WARN:
        warnings.append(
            f"classes are imbalanced: largest/smallest = {report.imbalance_ratio:.1f}; "
            f"consider class weights or more images for small classes"
        )
    small = [r for r in readable if min(r.width, r.height) < SMALL_IMAGE_PX]
    if small:
        warnings.append(f"{len(small)} image(s) smaller than {SMALL_IMAGE_PX} px on a side")
    if report.empty_classes:
        names = ", ".join(repr(c) for c in report.empty_classes)
        warnings.append(f"empty class folder(s) left out: {names}")
    warnings.extend(scanned.warnings)
    warnings.extend(report.notes)
    return Verdict(trainable=not reasons, reasons=reasons, warnings=warnings)


def audit_dataset(
    scanned: ScannedDataset,
    near_threshold: int = 4,
    workers: int | None = None,
    progress: bool = False,
) -> AuditReport:
    """Read, hash and decode every scanned file once, and judge the dataset.

    Args:
        scanned: The output of :func:`training.data.scan.scan_dataset`.
        near_threshold: Largest perceptual-hash Hamming distance (of 64 bits) for near duplicates.
        workers: Threads for decoding (Pillow releases the GIL); default: the CPU count.
        progress: Show a progress bar on stderr.
    """
    workers = workers or min(32, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        records = list(
            tqdm(
                pool.map(_inspect, scanned.files),
                total=len(scanned.files),
                desc="Auditing images",
                unit="img",
                disable=not progress,
                file=sys.stderr,
                leave=False,
            )
        )
    readable = [r for r in records if r.error is None]
    by_sha: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(readable):
        by_sha[r.sha256].append(i)
    exact = [g for g in by_sha.values() if len(g) > 1]
    near, near_leaks, notes = _near_search(readable, near_threshold, scanned.layout == "splits")
    conflicts = [g for g in [*exact, *near] if len({readable[i].label for i in g}) > 1]
    per_class = Counter(r.label for r in readable)

    def rels(groups: list[list[int]]) -> list[list[str]]:
        return sorted(sorted(readable[i].rel for i in g) for g in groups)

    report = AuditReport(
        root=scanned.root,
        layout=scanned.layout,
        classes=list(scanned.classes),
        records=records,
        counts=_counts(readable, scanned.layout),
        size_stats=_size_stats(readable),
        unreadable=[(r.rel, r.error or "") for r in records if r.error],
        exact_duplicates=rels(exact),
        near_duplicates=rels(near),
        leakage=_leakage(readable, exact, near_leaks) if scanned.layout == "splits" else [],
        cross_class_duplicates=rels(conflicts),
        imbalance_ratio=(max(per_class.values()) / min(per_class.values())) if per_class else 1.0,
        ignored=list(scanned.ignored),
        skipped=list(scanned.skipped),
        empty_classes=list(scanned.empty_classes),
        verdict=Verdict(trainable=False),
        notes=notes,
    )
    report.verdict = _verdict(report, scanned)
    return report


def raise_if_untrainable(report: AuditReport) -> None:
    """Stop a run before any model is built if the audit found the data unusable."""
    if not report.verdict.trainable:
        raise UnusableDatasetError(
            f"The dataset at {report.root} cannot be trained on: "
            + "; ".join(report.verdict.reasons)
            + ". Run `python -m training audit` on it for the full report."
        )


def _listing(title: str, items: list[str]) -> list[str]:
    if not items:
        return []
    lines = [f"  {title} ({len(items)}):"]
    lines += [f"    {item}" for item in items[:_LIST_LIMIT]]
    if len(items) > _LIST_LIMIT:
        lines.append(f"    … and {len(items) - _LIST_LIMIT} more")
    return lines


def format_audit(report: AuditReport) -> str:
    """A plain-text report for the terminal: counts, sizes, problems by file, verdict last."""
    readable = report.readable()
    lines = [
        f"Dataset: {report.root}",
        f"Layout: {report.layout}; {len(report.classes)} class(es); {len(report.records)} "
        f"image file(s), {len(readable)} readable",
        "",
        "Images per class:",
    ]
    splits = list(report.counts)
    width = max([len("class"), *(len(c) for c in report.classes)])
    lines.append("  " + "class".ljust(width) + "".join(f"{s:>8}" for s in splits))
    for name in report.classes:
        row = "".join(f"{report.counts[s].get(name, 0):>8}" for s in splits)
        lines.append("  " + name.ljust(width) + row)
    sizes = report.size_stats
    lines += [
        "",
        f"Image sizes: width {sizes['width']['min']}–{sizes['width']['max']} (median "
        f"{sizes['width']['median']:g}), height {sizes['height']['min']}–"
        f"{sizes['height']['max']} (median {sizes['height']['median']:g})",
        "",
        "Problems:",
    ]
    problems = [
        *_listing("Unreadable files", [f"{rel}: {why}" for rel, why in report.unreadable]),
        *_listing("Identical files", [", ".join(g) for g in report.exact_duplicates]),
        *_listing("Near-duplicate images", [", ".join(g) for g in report.near_duplicates]),
        *_listing(
            "Leakage across splits",
            [f"{a} ({sa}) ~ {b} ({sb}) [{kind}]" for a, sa, b, sb, kind in report.leakage],
        ),
        *_listing(
            "Same image in several classes", [", ".join(g) for g in report.cross_class_duplicates]
        ),
        *_listing("Empty class folders", report.empty_classes),
        *_listing("Skipped files", [f"{rel}: {why}" for rel, why in report.skipped]),
    ]
    lines += problems or ["  none found"]
    if report.ignored:
        lines.append(f"  ({len(report.ignored)} system/hidden file(s) ignored)")
    verdict = report.verdict
    lines += ["", f"Verdict: {'TRAINABLE' if verdict.trainable else 'NOT TRAINABLE'}"]
    lines += [f"  ✗ {reason}" for reason in verdict.reasons]
    lines += [f"  ! {warning}" for warning in verdict.warnings]
    return "\n".join(lines)
