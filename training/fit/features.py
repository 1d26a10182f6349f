"""The frozen backbone's features: computed once per run (or read from the feature cache) for the
head phase, the gate's checks, ``--lr auto`` and every head trial of a search.

One place builds "a classifier without dropout or augmentation, then its extractor", so the
gate, the fit and the tuner compute the same features the same way.
"""

from __future__ import annotations

import keras
import numpy as np

from training.config import TrainConfig
from training.data.batches import ImageBatches
from training.fit.batchnorm import recalibrate_batchnorm
from training.fit.feature_cache import cached_features
from training.fit.prepare import PreparedData
from training.model.classifier import Classifier, build_classifier


def extract_features(clf: Classifier, images: np.ndarray, rows: np.ndarray, batch_size: int):
    """Pooled backbone outputs of ``rows`` (no augmentation), as float32."""
    if len(rows) == 0:
        return np.zeros((0, int(clf.features.output.shape[-1])), np.float32)
    batches = ImageBatches(images, np.zeros(len(images), np.int32), rows, batch_size)
    features = batches.trim(clf.features.predict(batches, verbose=0))
    return np.asarray(features, dtype=np.float32)


def frozen_extractor(spec, data, image_size, config):
    """``extractor()`` for the gate's features: a classifier without dropout or augmentation
    (random weights' BatchNorm recalibrated), returning ``extract(rows)``."""

    def extractor():
        keras.utils.set_random_seed(config.seed)
        clf = build_classifier(
            spec, data.class_names, image_size, config.weights, dropout=0.0, augment=False
        )
        if not config.pretrained:
            recalibrate(clf, data, config)
        return lambda todo: extract_features(clf, data.cache.images, todo, config.batch_size)

    return extractor


def backbone_features(spec, data, splits, config, cache_dir, classifier, echo):
    """The frozen backbone's features of ``splits``; pretrained ones come from (and go to) the
    store's feature cache, so a later run on the same data and weights skips the pass.
    ``classifier()`` gives the built model; it is called only when features must be computed."""

    def extractor():
        clf = classifier()
        return lambda rows: extract_features(clf, data.cache.images, rows, config.batch_size)

    rows = {split: data.rows(split) for split in splits}
    return cached_features(
        spec, data.cache.images, rows, cache_dir, data.cache.key, config.weights, extractor, echo
    )


def recalibrate(clf: Classifier, data: PreparedData, config: TrainConfig) -> None:
    """Random-weight BatchNorm statistics re-estimated on the training images."""
    recalibrate_batchnorm(
        clf.backbone,
        clf.preprocess,
        data.cache.images,
        data.rows("train"),
        config.batch_size,
        seed=config.seed,
    )
