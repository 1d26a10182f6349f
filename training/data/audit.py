"""Look at every image once before training: what is broken, duplicated, leaked or lopsided.

Most disappointing fine-tunes are data problems (a val set that copies the train set, one class
with three images, a folder of unreadable files) that no training curve explains. The audit
reads each file once (hash, decode, perceptual hash), reports problems by file name, and gives
a verdict: training refuses data it cannot learn from, and warns about the rest.

Duplicates are graded by evidence. *Exact* ones have identical decoded pixels (a byte-identical
file is one case, a PNG saved again is another). A perceptual-hash match is only a *candidate*:
look-alike but distinct images (procedural shapes sharing a layout, a fixed camera) hash alike
too, so a candidate is a *near* duplicate only when small thumbnails of the two images agree as
well (:data:`NEAR_MAX_PIXEL_DIFF`). Unconfirmed candidates count for nothing: not duplicates, not
leakage, not a reason to keep files together in the split.

This module holds the audit report and the one pass that fills it (text output is in
:mod:`training.data.audit_text`, image similarity in :mod:`training.data.similarity`).
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
import sys
import unicodedata
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import imagehash
import numpy as np
from PIL import Image
from tqdm import tqdm

from training.babysit.thresholds import IMBALANCE_WARN
from training.data.images import open_rgb
from training.data.scan import ScannedDataset, ScannedFile, classes_missing
from training.data.similarity import (
    NEAR_MAX_PIXEL_DIFF,
    TooManyPairsError,
    _member_pairs,
    _thumbnail,
    _verified,
    component_labels,
    near_pairs,
    pixel_diff,
)
from training.errors import ImageError, UnusableDatasetError

MAX_FILE_BYTES = 512 * 1024**2
"""Files larger than this are reported unreadable instead of being read into memory."""
SMALL_IMAGE_PX = 32
_SPLIT_RANK = {"train": 0, "val": 1, "test": 2}
MAX_NEAR_PAIRS = 2_000_000
"""Look-alike pairs kept in memory at most (32 MB); beyond it the near search gives up."""
LOOKALIKE_MIN, LOOKALIKE_SHARE = 20, 0.1
"""A near group over max(20, 10% of images) is look-alike content, not duplicated files."""


class Leak(NamedTuple):
    """An image of a later split (``copy``) that duplicates one of an earlier split, with evidence.

    A tuple, so it stays a JSON list and older code that indexes it still reads the first five.
    """

    original: str
    original_split: str
    copy: str
    copy_split: str
    kind: str  # "exact" (identical pixels) or "near" (hash and thumbnail agree)
    hash_distance: int  # perceptual-hash Hamming distance, of 64 bits (0 for exact)
    pixel_diff: float  # thumbnail difference in 0-255 levels (0 for exact)


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
    pixels: str = ""  # digest of the decoded pixels and size: equal for exact duplicates


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
    leakage: list[Leak]
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


def _pixel_digest(image: Image.Image) -> str:
    """SHA-256 (hardware-accelerated on most CPUs) of the decoded pixels and size, 128 bits."""
    digest = hashlib.sha256(image.tobytes())
    digest.update(f"{image.mode}:{image.width}x{image.height}".encode())
    return digest.hexdigest()[:32]


def _inspect(file: ScannedFile) -> tuple[FileRecord, np.ndarray | None]:
    """The record of one file, and its thumbnail (None if unreadable or not hashed)."""
    record, thumb = FileRecord(file.rel, file.path, file.label, file.split, "", None, 0, 0), None
    try:
        size = file.path.stat().st_size
        if size > MAX_FILE_BYTES:
            record.error = f"file is {size:,} bytes, over {MAX_FILE_BYTES:,}; downscale it"
            return record, None
        data = file.path.read_bytes()
    except OSError as exc:
        record.error = f"cannot be read ({exc.strerror or exc}); check permissions"
        return record, None
    record.sha256 = hashlib.sha256(data).hexdigest()
    try:
        image = open_rgb(data)
    except ImageError as exc:
        record.error = exc.reason
        return record, None
    record.width, record.height = image.size
    try:
        record.pixels = _pixel_digest(image)
    except MemoryError:  # pixel-identical copies are then found only when byte-identical
        record.pixels = f"file:{record.sha256}"
    try:
        record.phash = str(imagehash.phash(image))
        thumb = _thumbnail(image)
    except (ValueError, MemoryError):  # near-duplicate search skips it; the image is fine
        record.phash, thumb = None, None
    return record, thumb


def _rank(record: FileRecord) -> int:
    return _SPLIT_RANK.get(record.split or "", 3)


def _evidence(
    readable: list[FileRecord], thumbs: list[np.ndarray | None], i: int, j: int
) -> tuple[int, float]:
    """Hash distance and thumbnail difference of records ``i`` and ``j`` (both hashed)."""
    distance = bin(int(readable[i].phash, 16) ^ int(readable[j].phash, 16)).count("1")
    return distance, round(float(pixel_diff(thumbs[i][None], thumbs[j][None])[0]), 2)


def _near_search(
    readable: list[FileRecord],
    thumbs: list[np.ndarray | None],
    threshold: int,
    max_diff: float,
    splits: bool,
) -> tuple[list[list[int]], dict[int, Leak], list[str]]:
    """Near-duplicate groups, near leaks (by later file) and notes.

    Perceptual hashes within ``threshold`` bits propose candidates; a candidate is a near
    duplicate only if the thumbnails agree too (``max_diff``). Pixel-identical images collapse to
    one node and identical hashes to one hash node, so a folder of copies costs a few nodes, not
    n² pairs. A chain of candidates too big to be one duplicate is look-alike content (a fixed
    camera) and is left out before any thumbnail is compared, so thumbnails are compared only
    for candidate pairs within small groups. Records are in rel order, so an index is also a rel
    rank.
    """
    hashed = np.array(
        [i for i, r in enumerate(readable) if r.phash and thumbs[i] is not None], dtype=np.int64
    )
    if len(hashed) < 2:
        return [], {}, []
    _, first, pnode = np.unique(
        [readable[i].pixels for i in hashed], return_index=True, return_inverse=True
    )
    reps = hashed[first]  # one record per set of pixel-identical images
    codes = np.array([int(readable[i].phash, 16) for i in reps], dtype=np.uint64)
    unique, hnode = np.unique(codes, return_inverse=True)  # hash node of each pixel node
    skipped = [f"near-duplicate search skipped: over {MAX_NEAR_PAIRS:,} similar pairs"]
    try:
        pairs = near_pairs(unique, threshold, MAX_NEAR_PAIRS)
    except TooManyPairsError:
        return [], {}, skipped
    chain = component_labels(len(unique), pairs)  # candidate groups, by hash node
    size = np.bincount(chain[hnode[pnode]], minlength=len(unique))  # records in each
    too_big = max(LOOKALIKE_MIN, LOOKALIKE_SHARE * len(readable))
    notes = [
        f"{n} images look alike in a chain of perceptual hashes; not treated as duplicates "
        f"(the split could not hold any of them out)"
        for n in size[size > too_big].tolist()
    ]
    small = np.nonzero(size[chain[hnode]] <= too_big)[0]  # pixel nodes outside such chains
    pairs = pairs[size[chain[pairs[:, 0]]] <= too_big]
    try:
        candidates = small[_member_pairs(hnode[small], pairs, MAX_NEAR_PAIRS)]
    except TooManyPairsError:
        return [], {}, skipped
    confirmed = _verified([thumbs[i] for i in reps], candidates, max_diff)
    members: dict[int, list[int]] = defaultdict(list)
    labels = component_labels(len(reps), confirmed)[pnode]
    for record, label in zip(hashed.tolist(), labels.tolist(), strict=True):
        members[label].append(record)
    groups = [g for g in members.values() if len({readable[i].pixels for i in g}) > 1]
    leaks: dict[int, Leak] = {}
    if splits and len(confirmed):  # best (earliest split, then rel) file among confirmed partners
        rank = np.array([_rank(readable[i]) for i in hashed], dtype=np.int64)
        key, n = rank * len(readable) + hashed, len(readable)
        best = np.full(len(reps), np.iinfo(np.int64).max)
        np.minimum.at(best, pnode, key)
        near = np.full(len(reps), np.iinfo(np.int64).max)
        np.minimum.at(near, confirmed[:, 0], best[confirmed[:, 1]])
        np.minimum.at(near, confirmed[:, 1], best[confirmed[:, 0]])
        partner = near[pnode]
        for k in np.nonzero(partner // n < rank)[0].tolist():
            mine, theirs = int(hashed[k]), int(partner[k] % n)
            a, b = readable[theirs], readable[mine]
            distance, diff = _evidence(readable, thumbs, theirs, mine)
            leaks[mine] = Leak(a.rel, a.split, b.rel, b.split, "near", distance, diff)
    return groups, leaks, notes


def _leakage(
    records: list[FileRecord], exact: list[list[int]], near: dict[int, Leak]
) -> list[Leak]:
    """One entry per file that also appears (exactly or nearly) in an earlier split."""
    leaks = dict(near)
    for group in exact:
        ordered = sorted(group, key=lambda i: (_rank(records[i]), i))
        anchor = records[ordered[0]]
        for i in ordered[1:]:
            if records[i].split != anchor.split:
                copy = records[i]
                leaks[i] = Leak(anchor.rel, anchor.split, copy.rel, copy.split, "exact", 0, 0.0)
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


def listing(items: list[str], first: int = 5) -> str:
    """The first few items (as reprs) and how many more: a message stays one readable line."""
    shown = ", ".join(repr(item) for item in items[:first])
    return shown + (f" and {len(items) - first} more" if len(items) > first else "")


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
    single = sorted(name for name, count in per_class.items() if count < 2)
    if len(single) == 1:
        reasons.append(
            f"class {single[0]!r} has only 1 readable image; add at least one more "
            f"(one to train on, one to validate)"
        )
    elif single:
        reasons.append(
            f"{len(single)} classes have only 1 readable image each ({listing(single)}); add at "
            f"least one more to each (one to train on, one to validate)"
        )
    if report.layout == "splits":
        _split_gaps(readable, reasons, warnings)
    garbled = [
        name for name in scanned.classes if any(unicodedata.category(c) == "Cc" for c in name)
    ]
    if garbled:
        reasons.append(
            f"class folder name(s) with a control character (newline, tab…): {listing(garbled)}; "
            "rename the folder(s): the name is the class name every report and prediction shows"
        )
    if report.unreadable:
        warnings.append(f"{len(report.unreadable)} unreadable file(s) will be left out")
    if report.exact_duplicates:
        n = sum(len(g) for g in report.exact_duplicates)
        warnings.append(f"{len(report.exact_duplicates)} group(s) of identical images ({n} files)")
    if report.near_duplicates:
        warnings.append(f"{len(report.near_duplicates)} group(s) of near-duplicate images")
    if report.leakage:
        exact = sum(leak.kind == "exact" for leak in report.leakage)
        warnings.append(
            f"{len(report.leakage)} image(s) in val/test also appear in an earlier split "
            f"({exact} exact, {len(report.leakage) - exact} near; leakage: validation scores "
            f"will be too optimistic)"
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


def _split_gaps(readable: list[FileRecord], reasons: list[str], warnings: list[str]) -> None:
    """Class sets across splits, checked before training: a class without a training image
    cannot be learnt (refused); one without a validation image, when ``val/`` exists, is never
    measured (a warning)."""
    untrained = classes_missing(readable, "train")
    if len(untrained) == 1:
        ((name, where),) = untrained.items()
        reasons.append(
            f"class {name!r} has images in {'/'.join(where)} but none in train; add training "
            "images for it or remove it (no model can learn a class it never saw)"
        )
    elif untrained:
        reasons.append(
            f"{len(untrained)} classes have images in val/test but none in train "
            f"({listing(list(untrained))}); add training images for them or remove them"
        )
    if not any(r.split == "val" for r in readable):
        return  # validation is drawn from train: every class gets some
    unmeasured = classes_missing([r for r in readable if r.split in ("train", "val")], "val")
    if unmeasured:
        warnings.append(
            f"no images in val for class(es) {listing(list(unmeasured))}: their accuracy is "
            "never measured; add validation images for them"
        )


def audit_dataset(
    scanned: ScannedDataset,
    near_threshold: int = 4,
    workers: int | None = None,
    progress: bool = False,
    near_max_pixel_diff: float = NEAR_MAX_PIXEL_DIFF,
) -> AuditReport:
    """Read, hash and decode every scanned file once, and judge the dataset.

    Args:
        scanned: The output of :func:`training.data.scan.scan_dataset`.
        near_threshold: Largest perceptual-hash Hamming distance (of 64 bits) for a candidate
            near duplicate.
        workers: Threads for decoding (Pillow releases the GIL); default: the CPU count.
        progress: Show a progress bar on stderr.
        near_max_pixel_diff: Largest thumbnail difference that confirms a candidate.
    """
    workers = workers or min(32, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        inspected = list(
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
    records = [record for record, _ in inspected]
    thumbs = [thumb for record, thumb in inspected if record.error is None]
    readable = [r for r in records if r.error is None]
    by_pixels: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(readable):
        by_pixels[r.pixels].append(i)
    exact = [g for g in by_pixels.values() if len(g) > 1]
    near, near_leaks, notes = _near_search(
        readable, thumbs, near_threshold, near_max_pixel_diff, scanned.layout == "splits"
    )
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
