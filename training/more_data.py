"""``python -m training learning-curve``: would more data help, end to end, without training.

The same data half as ``train`` and ``check`` (audit, split, decode once) and the same frozen
backbone features, from the feature cache where an earlier run left them; then the learning
curve of :mod:`training.babysit.learning_curve` on them, seconds after the one backbone pass.
Nothing is stored as a run: the curve is a question about the data, and a search records its
own (``summary["learning_curve"]`` and the ``more_data`` finding).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from training.babysit.learning_curve import learning_curve, more_data_finding
from training.config import TrainConfig
from training.fit.device import use_compilation_cache
from training.fit.feature_cache import cached_features
from training.fit.features import frozen_extractor
from training.fit.prepare import prepare_for_config
from training.store import RunStore


def split_features(config: TrainConfig, store: RunStore, echo: Callable[[str], None], verbose=1):
    """(prepared data, {"train": features, "val": features}) of every image of both splits, as
    ``train`` phase 1 computes them (pretrained ones from the feature cache)."""
    use_compilation_cache(store.compilation_cache_dir())
    spec, image_size, data = prepare_for_config(config, store, progress=verbose > 0)
    rows = {split: data.rows(split) for split in ("train", "val")}
    features = cached_features(
        spec,
        data.cache.images,
        rows,
        store.cache_dir(),
        data.cache.key,
        config.weights,
        frozen_extractor(spec, data, image_size, config),
        echo,
    )
    return data, features


def curve_for_config(
    config: TrainConfig,
    store: RunStore | None = None,
    *,
    verbose: int = 1,
    echo: Callable[[str], None] = print,
) -> dict[str, Any]:
    """The learning curve of ``config``'s data and backbone, with its ``more_data`` finding."""
    store = store or RunStore()
    data, features = split_features(config, store, echo, verbose)
    echo("Training the head on 10%, 25%, 50% and 100% of the training images…")
    curve = learning_curve(
        features["train"],
        data.labels("train"),
        features["val"] if len(data.rows("val")) else None,
        data.labels("val"),
        seed=config.seed,
    )
    finding = more_data_finding(curve, config.to_dict())
    return {
        "dataset": str(data.root),
        "backbone": config.backbone,
        "weights": config.weights,
        "image_size": data.cache.image_size,
        "classes": data.class_names,
        "splits": {split: int(np.size(data.rows(split))) for split in ("train", "val")},
        "learning_curve": curve,
        "finding": finding.to_dict(),
    }
