"""From what the user pointed at to decoded, split arrays: the data half of every run.

Resolve (unpack a zip safely) → scan → audit (refuse untrainable data) → split (stratified,
duplicates on one side) → decode once into the cache. ``train``, ``check`` and the tuner all
start here, so they see the same images, split and pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from training.data.audit import AuditReport, audit_dataset, raise_if_untrainable
from training.data.audit_cache import cached_audit
from training.data.cache import ImageCache, load_or_build_cache
from training.data.scan import resolve_dataset, scan_dataset
from training.data.split import split_records


@dataclass
class PreparedData:
    """A dataset ready to train on: the cache and the row numbers of each split."""

    root: Path
    audit: AuditReport
    cache: ImageCache
    splits: dict[str, np.ndarray]

    @property
    def class_names(self) -> list[str]:
        return self.cache.class_names

    def rows(self, split: str) -> np.ndarray:
        return self.splits.get(split, np.zeros(0, dtype=np.int64))

    def labels(self, split: str) -> np.ndarray:
        return self.cache.labels[self.rows(split)]

    def split_counts(self) -> dict[str, int]:
        return {name: len(rows) for name, rows in self.splits.items()}


def audit_path(
    data: str | Path,
    datasets_dir: Path,
    progress: bool = False,
    cache_dir: Path | None = None,
) -> AuditReport:
    """Unpack if needed, scan and audit; the ``audit`` command stops here.

    With ``cache_dir``, a dataset whose files are all unchanged since an earlier audit gets
    that audit's report back without reading an image (``training.data.audit_cache``).
    """
    root = resolve_dataset(Path(data).expanduser(), datasets_dir)
    return cached_audit(
        scan_dataset(root), cache_dir, lambda scanned: audit_dataset(scanned, progress=progress)
    )


def prepare_data(
    data: str | Path,
    image_size: int,
    val_split: float,
    seed: int,
    datasets_dir: Path,
    cache_dir: Path,
    progress: bool = True,
) -> PreparedData:
    """Everything between a dataset path and arrays a model can fit on."""
    report = audit_path(data, datasets_dir, progress=progress, cache_dir=cache_dir)
    raise_if_untrainable(report)
    readable = report.readable()
    groups = [*report.exact_duplicates, *report.near_duplicates]
    parts = split_records(readable, val_split, seed, groups=groups)
    class_names = [name for name in report.classes if any(r.label == name for r in readable)]
    cache = load_or_build_cache(readable, class_names, image_size, cache_dir, progress=progress)
    splits = {name: cache.indices([r.rel for r in records]) for name, records in parts.items()}
    return PreparedData(root=report.root, audit=report, cache=cache, splits=splits)


def resolve_model_config(config):
    """The backbone spec and image size of a ``TrainConfig``, its weights file checked: refused
    here, before the store is opened, a bad value records nothing."""
    from training.model.backbones import check_weights, get_backbone

    spec = get_backbone(config.backbone)
    image_size = config.image_size or spec.default_size
    spec.check_size(image_size)
    check_weights(config.weights)
    return spec, image_size


def prepare_for_config(config, store, progress: bool = True):
    """The backbone spec, image size and prepared data of a ``TrainConfig`` in ``store``."""
    spec, image_size = resolve_model_config(config)
    data = prepare_data(
        config.data,
        image_size,
        config.val_split,
        config.seed,
        store.datasets_dir(),
        store.cache_dir(),
        progress=progress,
    )
    return spec, image_size, data
