"""The three contestants of ``bench/search.py``, each run in its own fresh process.

``python -m bench.search --contestant NAME --seed S --split-dir DIR --weights PATH ...`` imports
this module (Keras, Keras Tuner and the few pieces of ours every contestant uses load here, so
the time to import it is the contestant's import time), runs one contestant from a cold start,
and writes what it measured as JSON. The parent (``bench/search.py``) spawns one such process per
contestant and seed and compares them.

The two plain contestants are written the way the Keras transfer-learning guide and the Keras
Tuner docs teach; what they borrow from Babysitter is only what makes the comparison fair:

- the search space: ``tuner.space.default_space([backbone], phase2=False).register(hp)`` declares
  the very ranges a Babysitter head search samples (names, bounds, log/linear, choices);
- the weights: ``BackboneSpec.build(size, PATH)`` is ``keras.applications.<Backbone>(weights=None,
  include_top=False, pooling="avg")`` plus ``load_weights(PATH)``;
- the backbone's preprocessing: ``training.model.layers.ImagePreprocessing``, the arithmetic of
  ``keras.applications``' ``preprocess_input`` as a layer;
- the decoder: ``training.data.images.load_rgb`` (Pillow, EXIF-upright, bilinear squash to the
  size), in a thread pool as Babysitter's cache build does, so all three see identical pixels;
- the meaning of each hyperparameter, as ``tuner.heads``/``training.fit.two_phase`` implement
  it (see :func:`head_logits` and :func:`compile_head`).
"""

from __future__ import annotations

import math
import os
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import keras
import keras_tuner as kt
import numpy as np

from training.babysit.thresholds import EXPLOSION_FACTOR
from training.data.images import IMAGE_EXTENSIONS, load_rgb
from training.fit.optimizers import make_optimizer
from training.fit.schedules import schedule_rate
from training.model.backbones import get_backbone
from training.model.layers import ImagePreprocessing
from tuner.space import SearchSpace, default_space

# ---------------------------------------------------------------------------------------------
# Data: the parent's train/ and val/ folders, decoded inside the contestant's clock.


def load_split(split_dir: Path, size: int) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], int]:
    """``{"train": (images, labels), "val": ...}`` and the number of classes.

    Classes are the sorted folder names of ``train/`` (Babysitter sorts them the same way).
    """
    classes = sorted(p.name for p in (split_dir / "train").iterdir() if p.is_dir())
    out = {}
    workers = min(32, os.cpu_count() or 1)
    for split in ("train", "val"):
        files, labels = [], []
        for label, name in enumerate(classes):
            folder = split_dir / split / name
            found = sorted(
                p
                for p in (folder.iterdir() if folder.is_dir() else [])
                if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")
            )
            files += found
            labels += [label] * len(found)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            images = list(pool.map(lambda p: load_rgb(p, size), files))
        array = np.stack(images) if images else np.zeros((0, size, size, 3), np.uint8)
        out[split] = (array, np.asarray(labels, dtype=np.int64))
    return out, len(classes)


def one_hot(labels: np.ndarray, classes: int) -> np.ndarray:
    return np.eye(classes, dtype="float32")[labels]


# ---------------------------------------------------------------------------------------------
# The head and its hyperparameters, written the textbook way, with Babysitter's meanings.


def head_logits(x, values: dict[str, Any], classes: int):
    """Dropout → optional hidden ReLU layer of ``head_units`` → logits with small initial
    weights (N(0, 0.01²), zero bias: a fresh head's loss is ln(classes)); L2 on both kernels
    (``l2 · Σ w²``, what ``tuner.heads.VariableL2Dense`` adds)."""
    l2 = keras.regularizers.L2(values["l2"])
    x = keras.layers.Dropout(values["dropout"])(x)
    if int(values["head_units"]) > 0:
        x = keras.layers.Dense(int(values["head_units"]), activation="relu", kernel_regularizer=l2)(
            x
        )
    return keras.layers.Dense(
        classes,
        kernel_initializer=keras.initializers.RandomNormal(stddev=0.01),
        kernel_regularizer=l2,
        name="logits",
    )(x)


def compile_head(model: keras.Model, values: dict[str, Any]) -> None:
    """Cross-entropy from logits on one-hot targets with the trial's label smoothing (the soft
    targets ``tuner.heads`` computes in NumPy); ``data_loss`` is the cross-entropy without the
    L2 penalty, for counting trials Babysitter's 3× rule would have stopped."""
    model.compile(
        optimizer=make_optimizer(values["optimizer"], values["lr"]),
        loss=keras.losses.CategoricalCrossentropy(
            from_logits=True, label_smoothing=values["label_smoothing"]
        ),
        metrics=[
            "accuracy",
            keras.metrics.CategoricalCrossentropy(from_logits=True, name="data_loss"),
        ],
    )


class _ScheduledHyperModel(kt.HyperModel):
    """Declares Babysitter's head space in ``build`` and fits with the trial's schedule."""

    def __init__(self, space: SearchSpace, classes: int):
        super().__init__()
        self.space, self.classes = space, classes

    def values(self, hp: kt.HyperParameters) -> dict[str, Any]:
        return self.space.register(hp)  # the trial's values (declared on first use)

    def fit(self, hp, model, *args, **kwargs):
        values = self.values(hp)
        epochs = kwargs.get("epochs", 1)
        schedule = keras.callbacks.LearningRateScheduler(
            lambda epoch: schedule_rate(values["schedule"], values["lr"], epoch, epochs)
        )
        kwargs["callbacks"] = [*kwargs.get("callbacks", []), schedule]
        return model.fit(*args, **kwargs)


class PlainHyperModel(_ScheduledHyperModel):
    """(a) The transfer-learning guide inside a HyperModel: a frozen backbone from the weights
    file, called with ``training=False``, the head on top; built and compiled every trial."""

    def __init__(self, space, classes, spec, size: int, weights: str):
        super().__init__(space, classes)
        self.spec, self.size, self.weights = spec, size, weights

    def build(self, hp):
        values = self.values(hp)
        backbone = self.spec.build(self.size, self.weights, include_top=False, pooling="avg")
        backbone.trainable = False
        inputs = keras.Input((self.size, self.size, 3), dtype="uint8")
        x = ImagePreprocessing(self.spec.preprocess_mode)(inputs)
        x = backbone(x, training=False)  # BatchNorm in inference mode: the file's statistics
        model = keras.Model(inputs, head_logits(x, values, self.classes))
        compile_head(model, values)
        return model


class FeatureHeadHyperModel(_ScheduledHyperModel):
    """(b) The same head, on features the frozen backbone computed once."""

    def __init__(self, space, classes, feature_dim: int):
        super().__init__(space, classes)
        self.feature_dim = feature_dim

    def build(self, hp):
        values = self.values(hp)
        inputs = keras.Input((self.feature_dim,))
        model = keras.Model(inputs, head_logits(inputs, values, self.classes))
        compile_head(model, values)
        return model


class TimedRandomSearch(kt.RandomSearch):
    """``RandomSearch`` that notes when each trial started and ended (seconds since the
    contestant's start of work), its best val accuracy and its per-epoch data loss."""

    def __init__(self, *args, started: float, classes: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.started, self.limit, self.records = started, EXPLOSION_FACTOR * math.log(classes), []

    def run_trial(self, trial, *args, **kwargs):
        begin = time.perf_counter()
        record = {"id": trial.trial_id, "values": dict(trial.hyperparameters.values)}
        try:
            histories = super().run_trial(trial, *args, **kwargs)
        except Exception as error:
            record.update(status="failed", error=f"{type(error).__name__}: {error}")
            raise
        finally:
            end = time.perf_counter()
            record.update(seconds=end - begin, end_s=end - self.started)
            self.records.append(record)
        history = histories[0].history
        val = [v for v in history.get("val_accuracy", []) if math.isfinite(v)]
        losses = history.get("data_loss", [])
        exploded = any(not math.isfinite(v) or v > self.limit for v in losses)
        record.update(
            status="exploded" if exploded else "completed",
            score=max(val) if val else None,
            epochs=len(losses),
        )
        return histories


# ---------------------------------------------------------------------------------------------
# The contestants.


def _kt_search(hypermodel, cfg, started: float, classes: int, train, val, workdir: Path):
    tuner = TimedRandomSearch(
        hypermodel,
        objective="val_accuracy",
        max_trials=cfg["trials"],
        # Keras Tuner reads seed 0 as "no seed" (``seed or random.randint(...)``); Babysitter's
        # first stage seeds its oracle with seed + 1, so with the same space the plain tuners
        # draw exactly the trials Babysitter's first stage draws, in the same order.
        seed=cfg["seed"] + 1,
        directory=str(workdir),
        project_name="kt",
        overwrite=True,
        started=started,
        classes=classes,
    )
    tuner.search(
        train[0],
        one_hot(train[1], classes),
        validation_data=(val[0], one_hot(val[1], classes)),
        epochs=cfg["epochs"],
        batch_size=cfg["batch"],
        verbose=0,
    )
    best = tuner.oracle.get_best_trials(1)
    return tuner.records, (best[0].score if best else None)


def run_plain(cfg: dict, workdir: Path) -> dict:
    """(a) Decode, then Keras Tuner over frozen backbone + head: the backbone runs every epoch."""
    keras.utils.set_random_seed(cfg["seed"])
    started = time.perf_counter()
    data, classes = load_split(Path(cfg["split_dir"]), cfg["size"])
    decoded = time.perf_counter()
    space = default_space([cfg["backbone"]], phase2=False)
    spec = get_backbone(cfg["backbone"])
    hypermodel = PlainHyperModel(space, classes, spec, cfg["size"], cfg["weights"])
    records, best = _kt_search(
        hypermodel, cfg, started, classes, data["train"], data["val"], workdir
    )
    done = time.perf_counter()
    return {
        "search_s": done - started,
        "search_started_s": decoded - started,
        "parts_s": {"decode": decoded - started, "trials": done - decoded},
        "trials": records,
        "best_val_accuracy": best,
        "images": {k: len(v[1]) for k, v in data.items()},
        "classes": classes,
    }


def run_plain_features(cfg: dict, workdir: Path) -> dict:
    """(b) Decode, run the frozen backbone once (``predict``), Keras Tuner over heads."""
    keras.utils.set_random_seed(cfg["seed"])
    started = time.perf_counter()
    data, classes = load_split(Path(cfg["split_dir"]), cfg["size"])
    decoded = time.perf_counter()
    spec = get_backbone(cfg["backbone"])
    backbone = spec.build(cfg["size"], cfg["weights"], include_top=False, pooling="avg")
    backbone.trainable = False
    inputs = keras.Input((cfg["size"], cfg["size"], 3), dtype="uint8")
    x = ImagePreprocessing(spec.preprocess_mode)(inputs)
    extractor = keras.Model(inputs, backbone(x, training=False))
    features = {
        split: (extractor.predict(images, batch_size=cfg["batch"], verbose=0), labels)
        for split, (images, labels) in data.items()
    }
    featured = time.perf_counter()
    del extractor, backbone, data  # the search needs only the features
    space = default_space([cfg["backbone"]], phase2=False)
    hypermodel = FeatureHeadHyperModel(space, classes, features["train"][0].shape[1])
    records, best = _kt_search(
        hypermodel, cfg, started, classes, features["train"], features["val"], workdir
    )
    done = time.perf_counter()
    return {
        "search_s": done - started,
        "search_started_s": featured - started,
        "parts_s": {
            "decode": decoded - started,
            "features": featured - decoded,
            "trials": done - featured,
        },
        "trials": records,
        "best_val_accuracy": best,
        "images": {k: len(v[1]) for k, v in features.items()},
        "classes": classes,
    }


def run_babysitter(cfg: dict, workdir: Path, trial_execution: str = "batched") -> dict:
    """(c) ``tuner.search.search`` with ``top_k=0`` (head search only) in an empty home; (d)
    the same with ``trial_execution="serial"``."""
    from training.store import RunStore
    from training.store.trials import trials as stored_trials
    from tuner.config import SearchConfig
    from tuner.search import search

    config = SearchConfig(
        data=str(cfg["split_dir"]),
        backbones=[cfg["backbone"]],
        weights=cfg["weights"],
        image_size=cfg["size"],
        batch_size=cfg["batch"],
        trials=cfg["trials"],
        stages=min(cfg["stages"], cfg["trials"]),
        epochs_head=cfg["epochs"],
        epochs_finetune=0,
        top_k=0,
        seed=cfg["seed"],
        precision="float32",  # as the plain contestants (on a GPU "auto" may pick bfloat16)
        trial_execution=trial_execution,
    )
    messages: list[str] = []
    wall = time.time()
    started = time.perf_counter()
    result = search(config, verbose=0, echo=messages.append)
    done = time.perf_counter()
    store = RunStore()
    rows = stored_trials(store, result.run_id)
    ended = _recorded_at(store, result.run_id)
    parts = dict(result.summary.get("seconds", {}))
    records = []
    for row in rows:
        status = row["status"]
        if status != "completed" and "exploded" in (row.get("error") or ""):
            status = "exploded"
        stamp = row.get("recorded_at") or ended.get(row["trial_id"])
        records.append(
            {
                "id": row["trial_id"],
                "values": row["hyperparameters"],
                "status": status,
                "seconds": row["seconds"],
                "end_s": _since(stamp, wall),
                "score": row["score"],
                "epochs": len(row["history"]),
            }
        )
    if any(r["end_s"] is None for r in records):  # no timestamps: rebuild from the parts
        clock = parts.get("prepare_and_features", 0.0)
        for r in records:
            clock += r["seconds"] or 0.0
            r["end_s"] = clock
    scores = [r["score"] for r in records if r["status"] == "completed" and r["score"] is not None]
    notes = []
    if parts.get("finetune", 0.0) > 0.5:
        notes.append(
            f"this build still trained a model after the head search with --top-k 0 "
            f"({parts['finetune']:.1f} s, included in search_s)"
        )
    return {
        "search_s": done - started,
        "search_started_s": parts.get("prepare_and_features"),
        "parts_s": parts,
        "trials": records,
        "best_val_accuracy": max(scores) if scores else None,
        "run_id": result.run_id,
        "notes": notes,
    }


def _recorded_at(store, run_id: str) -> dict[str, str]:
    """When each trial's row was written (at its end), from the run store's SQLite file."""
    try:
        with sqlite3.connect(f"file:{store.db_path}?mode=ro", uri=True) as conn:
            rows = conn.execute(
                "SELECT trial_id, recorded_at FROM trials WHERE run_id = ?", (run_id,)
            ).fetchall()
        return dict(rows)
    except sqlite3.Error:
        return {}


def _since(stamp: str | None, wall: float) -> float | None:
    if not stamp:
        return None
    return datetime.fromisoformat(stamp).timestamp() - wall


RUNNERS = {
    "plain": run_plain,
    "plain-features": run_plain_features,
    "babysitter": run_babysitter,
    "babysitter-serial": lambda cfg, workdir: run_babysitter(cfg, workdir, "serial"),
}


def environment() -> dict:
    """Backend and library versions of this process."""
    versions = {"keras": keras.__version__, "keras_tuner": kt.__version__, "numpy": np.__version__}
    backend = keras.backend.backend()
    try:
        module = __import__("jax" if backend == "jax" else backend)
        versions[backend] = module.__version__
    except Exception:
        pass
    return {"backend": backend, "versions": versions}
