"""Train/validation split: stratified, reproducible, and never splitting a duplicate group.

A validation score only means something if no validation image (or a copy of it) was trained
on, and if every class is represented. So duplicates found by the audit move as one unit, each
class keeps its proportion, and the same seed always gives the same split.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Sequence

import numpy as np

from training.config import BOUNDS
from training.data.audit import FileRecord
from training.data.similarity import component_labels
from training.errors import ConfigError

MAX_VAL_SPLIT = BOUNDS["val_split"][1]


def _check_fraction(val_split: float) -> float:
    if isinstance(val_split, bool) or not isinstance(val_split, int | float):
        raise ConfigError(
            f"Expected val_split to be a number between 0 and {MAX_VAL_SPLIT}. "
            f"Received: val_split={val_split!r}"
        )
    if not 0.0 <= float(val_split) <= MAX_VAL_SPLIT:
        raise ConfigError(
            f"Expected val_split between 0 and {MAX_VAL_SPLIT} (the fraction of images held out "
            f"for validation). Received: val_split={val_split!r}"
        )
    return float(val_split)


def _components(records: Sequence[FileRecord], groups: list[list[str]] | None) -> list[list[int]]:
    """Record indices bound together by duplicate groups (transitively), in rel order."""
    index = {r.rel: i for i, r in enumerate(records)}
    pairs = []
    for group in groups or []:
        members = [index[rel] for rel in group if rel in index]
        pairs += [(members[0], other) for other in members[1:]]
    labels = component_labels(len(records), np.array(pairs, dtype=np.int64))
    found: dict[int, list[int]] = defaultdict(list)
    for i in sorted(range(len(records)), key=lambda i: records[i].rel):
        found[int(labels[i])].append(i)
    return sorted(found.values(), key=lambda c: records[c[0]].rel)


def _stratified(
    records: Sequence[FileRecord], val_split: float, seed: int, groups: list[list[str]] | None
) -> tuple[list[FileRecord], list[FileRecord]]:
    """(train, val) with about ``val_split`` of each class in val, whole groups on one side."""
    if val_split == 0 or not records:
        return list(records), []
    by_class: dict[str, list[list[int]]] = defaultdict(list)
    for component in _components(records, groups):
        # A group spanning classes (a label conflict) goes with its most common label.
        label = Counter(records[i].label for i in component).most_common(1)[0][0]
        by_class[label].append(component)
    val: list[int] = []
    for label in sorted(by_class):
        components = by_class[label]
        total = sum(len(c) for c in components)
        if total < 2:
            continue
        target = min(max(1, round(total * val_split)), total - 1)
        # Seeded per class, so adding a class does not reshuffle the others.
        random.Random(f"{seed}|{label}").shuffle(components)
        taken = 0
        for component in components:
            if taken + len(component) <= target:
                val.extend(component)
                taken += len(component)
        if taken == 0:  # every group was larger than the target: take the smallest that fits
            fitting = [c for c in components if len(c) <= total - 1]
            if fitting:
                val.extend(min(fitting, key=len))
    chosen = set(val)
    train = [r for i, r in enumerate(records) if i not in chosen]
    return train, [records[i] for i in sorted(chosen)]


def split_records(
    records: list[FileRecord],
    val_split: float,
    seed: int,
    groups: list[list[str]] | None = None,
) -> dict[str, list[FileRecord]]:
    """Assign readable records to 'train' and 'val' (and 'test' when the dataset has one).

    Args:
        records: Readable audit records.
        val_split: Fraction of each class for validation, in [0, 0.9]; ignored when the dataset
            already has a val folder (its split is kept as the user made it).
        seed: Same seed and records, same split.
        groups: Lists of rel paths that must stay on one side (exact and near duplicates).

    Returns:
        ``{'train': [...], 'val': [...]}`` plus ``'test'`` if any record is in a test split,
        each sorted by rel path.
    """
    val_split = _check_fraction(val_split)
    by_split: dict[str | None, list[FileRecord]] = defaultdict(list)
    for record in sorted(records, key=lambda r: r.rel):
        by_split[record.split].append(record)
    if by_split.get("val"):
        train = by_split.get("train", []) + by_split.get(None, [])
        parts = {"train": train, "val": list(by_split["val"])}
    else:
        pool = by_split.get("train", []) + by_split.get(None, [])
        train, val = _stratified(sorted(pool, key=lambda r: r.rel), val_split, seed, groups)
        parts = {"train": train, "val": val}
    if by_split.get("test"):
        parts["test"] = list(by_split["test"])
    return {name: sorted(part, key=lambda r: r.rel) for name, part in parts.items()}
