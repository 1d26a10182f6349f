"""Backbone features computed once per dataset and backbone, kept for every later run.

A frozen pretrained backbone maps an image to the same features in ``train`` phase 1, ``check``
and every ``search``: the backbone pass is the fixed cost of all three, so its output is stored
in the run store's cache and read back by the next run on the same data. The key is everything
the features depend on: the decoded images (the image cache's content key, which covers every
file's bytes, label and split, and the image size), the backbone, its preprocessing, the weights
(a weights file's SHA-256; for ImageNet weights the Keras release, whose files Keras pins by
hash), the dtype policy and the Keras backend. The key needs no model, so a run whose features
are all stored does not build the backbone at all.

Random initial weights are not cached: they are drawn per run and their BatchNorm statistics
are re-estimated on that run's training split, and the saved model must carry exactly the
backbone its head was trained on.

Rows are computed on demand: a run asks for its splits' rows, the missing ones are computed and
the file is replaced atomically (temporary sibling, then rename), so a killed run or a second
process never leaves a half-written file that a later run would read; a file that does not load
anyway, holds another key's features (a file moved or swapped) or does not match the content
digest stored in it is computed again, and a line says so. The cache only saves time, so a full
disk costs the reuse (with a warning naming the file), never the run.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np

from training.atomic import atomic_path
from training.digest import content_digest
from training.errors import WriteError

FEATURES_VERSION = 1
# Each cache is <cache_dir>/features-<key>/ in the store's cache_dir() (see training.data.cache).
PREFIX = "features-"
"""Bump when the feature pass changes (pooling, preprocessing, batching), so old files are not
read."""

FEATURES_FILE = "features.npz"


def weights_identity(weights: str) -> str | None:
    """What identifies pretrained weights' values; None for random weights (never cached)."""
    if weights == "none":
        return None
    if weights == "imagenet":
        return f"imagenet@keras-{keras.__version__}"
    digest = hashlib.sha256()
    with open(weights, "rb") as fp:
        while chunk := fp.read(1 << 20):
            digest.update(chunk)
    return f"file:{digest.hexdigest()}"


def feature_key(dataset_key: str, backbone: str, preprocessing: str, weights: str) -> str:
    """The cache key of one (dataset at a size, backbone, preprocessing, weights) combination."""
    parts = {
        "version": FEATURES_VERSION,
        "dataset": dataset_key,
        "backbone": backbone,
        "preprocessing": preprocessing,
        "weights": weights,
        "policy": keras.config.dtype_policy().name,
        "backend": keras.backend.backend(),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:20]


class FeatureCache:
    """One key's features, one row per image of the image cache, filled in as runs ask."""

    def __init__(self, directory: Path, rows: int, echo: Callable[[str], None] = print):
        self.path = Path(directory) / FEATURES_FILE
        self.key = Path(directory).name  # stored in the file: another key's file is not ours
        self.rows = rows
        self.echo = echo
        self.features: np.ndarray | None = None
        self.have = np.zeros(rows, dtype=bool)
        self._load()

    def _load(self) -> None:
        if not self.path.exists():
            return
        try:
            with np.load(self.path, allow_pickle=False) as stored:
                features, have = stored["features"], stored["have"]
                key, digest = str(stored["key"]), str(stored["digest"])
        except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):
            return self._discard("cannot be read")  # truncated, torn, from older code
        if key != self.key:
            return self._discard(f"holds another cache's features ({key})")
        if digest != content_digest(features, have):
            return self._discard("does not match its content digest (overwritten or replaced)")
        if features.ndim == 2 and len(features) == self.rows and have.shape == (self.rows,):
            self.features, self.have = features.astype(np.float32), have.astype(bool)
        else:
            self._discard(f"does not hold {self.rows} rows")

    def _discard(self, problem: str) -> None:
        """Say why the stored file is not used; its rows are computed again and replace it."""
        self.echo(f"warning: the feature cache {self.path} {problem}; computing its rows again.")

    def missing(self, rows: np.ndarray) -> np.ndarray:
        return rows[~self.have[rows]]

    def get(self, rows: np.ndarray, compute: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """Features of ``rows``, computing (and storing) only those not stored yet."""
        todo = np.unique(self.missing(rows))
        if len(todo):
            computed = compute(todo)
            if self.features is None:
                self.features = np.zeros((self.rows, computed.shape[1]), np.float32)
            self.features[todo] = computed
            self.have[todo] = True
            self._save()
        if self.features is None:  # no rows asked for and nothing stored
            return np.zeros((0, 0), np.float32)
        return self.features[rows]

    def _save(self) -> None:
        try:
            with atomic_path(self.path) as temp:
                np.savez(
                    temp,
                    features=self.features,
                    have=self.have,
                    key=np.array(self.key),
                    digest=np.array(content_digest(self.features, self.have)),
                )
        except WriteError as error:  # a full disk costs the reuse, never the run
            self.echo(
                f"warning: the features could not be cached in {error.path} ({error.reason}); "
                "this run goes on, and the next one computes them again."
            )


def cached_features(
    spec,
    images: np.ndarray,
    rows: dict[str, np.ndarray],
    cache_dir: Path,
    dataset_key: str,
    weights: str,
    extractor: Callable[[], Callable[[np.ndarray], np.ndarray]],
    echo: Callable[[str], None] = print,
) -> dict[str, np.ndarray]:
    """Each split's features, from the store's cache where they are, computed where not.

    ``extractor()`` builds the backbone and returns ``extract(rows)``, which runs it on those
    image rows; it is called only when some rows are missing (always for random weights).
    """
    total = sum(len(r) for r in rows.values())
    identity = weights_identity(weights)
    if identity is None:
        echo(f"Computing {spec.name} features once for {total} images…")
        extract = extractor()
        return {split: extract(split_rows) for split, split_rows in rows.items()}
    key = feature_key(dataset_key, spec.name, spec.preprocess_mode, identity)
    cache = FeatureCache(Path(cache_dir) / f"{PREFIX}{key}", len(images), echo)
    wanted = np.concatenate([np.asarray(r, np.int64) for r in rows.values()] or [[]])
    wanted = wanted.astype(np.int64)
    missing = len(np.unique(cache.missing(wanted)))
    if missing:
        echo(f"Computing {spec.name} features once for {missing} images…")
    else:
        echo(f"{spec.name} features of all {total} images reused from the cache.")
    everything = cache.get(wanted, lambda todo: extractor()(todo))
    out, start = {}, 0
    for split, split_rows in rows.items():
        out[split] = everything[start : start + len(split_rows)]
        start += len(split_rows)
    return out
