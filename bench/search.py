"""Whole search and per-trial time: Babysitter's staged search vs plain Keras Tuner, one run.

Same images (decoded once, shared), same backbone, trials, head epochs and search space:
  plain  keras_tuner.RandomSearch with a HyperModel that builds the full model (frozen
         backbone + head) every trial and runs the backbone every epoch (the usual tutorial)
  ours   ``tuner.search.search``: features computed once, heads trained on them through the
         same Keras Tuner Oracle, then the best configuration trained for real (phase 1 only,
         ``--epochs-finetune 0``, so both sides stop at a trained head)
Prints per-trial seconds (median), whole-search seconds (data preparation, features and all
trials; plain Keras Tuner's includes the same decoded arrays, prepared before its clock starts),
best val accuracy, and the ratios; and ours again including training and saving the best
model (plain Keras Tuner has no equivalent step).

    KERAS_BACKEND=jax python bench/search.py --images 600 --size 96 --backbone MobileNetV2
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import write_jpegs


def plain_keras_tuner(spec, weights, x, y, vx, vy, classes, trials, epochs, batch, workdir):
    """Textbook Keras Tuner: a new frozen-backbone model per trial, images every epoch."""
    import keras
    import keras_tuner as kt

    from training.layers import ImagePreprocessing

    def build(hp):
        backbone = spec.build(x.shape[1], weights, include_top=False, pooling="avg")
        backbone.trainable = False
        image = keras.Input(x.shape[1:], dtype="uint8")
        h = keras.layers.Rescaling(1.0)(image)
        h = ImagePreprocessing(spec.preprocess_mode)(h)
        h = backbone(h, training=False)
        h = keras.layers.Dropout(hp.Float("dropout", 0.0, 0.7))(h)
        units = hp.Choice("head_units", [0, 128, 256, 512])
        l2 = keras.regularizers.L2(hp.Float("l2", 1e-6, 1e-1, sampling="log"))
        if units:
            h = keras.layers.Dense(units, "relu", kernel_regularizer=l2)(h)
        out = keras.layers.Dense(classes, "softmax", kernel_regularizer=l2)(h)
        model = keras.Model(image, out)
        lr = hp.Float("lr", 1e-5, 1e-1, sampling="log")
        optimizer = {
            "adam": keras.optimizers.Adam(lr),
            "adamw": keras.optimizers.AdamW(lr),
            "sgd": keras.optimizers.SGD(lr, momentum=0.9, nesterov=True),
        }[hp.Choice("optimizer", ["adam", "adamw", "sgd"])]
        model.compile(
            optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"]
        )
        return model

    times = []

    class TrialTimer(kt.RandomSearch):
        def run_trial(self, trial, *args, **kwargs):
            started = time.perf_counter()
            out = super().run_trial(trial, *args, **kwargs)
            times.append(time.perf_counter() - started)
            return out

    tuner = TrialTimer(
        build,
        objective="val_accuracy",
        max_trials=trials,
        seed=0,
        directory=str(workdir),
        project_name="plain",
        overwrite=True,
    )
    started = time.perf_counter()
    tuner.search(x, y, validation_data=(vx, vy), epochs=epochs, batch_size=batch, verbose=0)
    total = time.perf_counter() - started
    best = tuner.oracle.get_best_trials(1)[0].score
    return {"trial_s": float(np.median(times)), "search_s": total, "best_val_accuracy": best}


def ours(data_dir, backbone, weights, size, trials, epochs, batch):
    from training.runs import RunStore
    from training.trials import trials as stored_trials
    from tuner.config import SearchConfig
    from tuner.search import search

    config = SearchConfig(
        data=str(data_dir),
        backbones=[backbone],
        weights=weights,
        image_size=size,
        batch_size=batch,
        trials=trials,
        stages=2,
        epochs_head=epochs,
        epochs_finetune=0,
        top_k=1,
    )
    started = time.perf_counter()
    result = search(config, verbose=0, echo=lambda m: None)
    total = time.perf_counter() - started
    rows = stored_trials(RunStore(), result.run_id)
    best_head = max((t["score"] for t in rows if t["score"] is not None), default=0.0)
    seconds = result.summary["seconds"]
    return {
        "trial_s": float(np.median([t["seconds"] for t in rows])),
        "search_s": seconds["prepare_and_features"] + seconds["head_search"],
        "search_with_final_model_s": total,
        "parts_s": seconds,
        "best_val_accuracy": best_head,
        "failed_trials": sum(t["status"] != "completed" for t in rows),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=600)
    parser.add_argument("--classes", type=int, default=4)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--backbone", default="MobileNetV2")
    parser.add_argument("--weights", default="none")
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="bench_search_"))
    os.environ["BABYSITTER_HOME"] = str(workdir / "home")
    try:
        from training.backbones import get_backbone
        from training.data.demo import make_demo_dataset
        from training.prepare import prepare_data
        from training.runs import RunStore

        data_dir = workdir / "data"
        if args.classes == 4:  # the learnable procedural demo classes
            make_demo_dataset(data_dir, per_class=args.images // 4, size=args.size)
        else:
            write_jpegs(data_dir, args.images, args.size, args.classes)
        store = RunStore()
        data = prepare_data(
            data_dir, args.size, 0.2, 0, store.datasets_dir(), store.cache_dir(), progress=False
        )
        x, y = data.cache.images[data.rows("train")], data.labels("train")
        vx, vy = data.cache.images[data.rows("val")], data.labels("val")
        spec = get_backbone(args.backbone)
        weights = None if args.weights == "none" else args.weights
        mine = ours(
            data_dir, args.backbone, args.weights, args.size, args.trials, args.epochs, args.batch
        )
        plain = plain_keras_tuner(
            spec,
            weights,
            x,
            y,
            vx,
            vy,
            len(data.class_names),
            args.trials,
            args.epochs,
            args.batch,
            workdir,
        )
        import keras

        report = {
            "backend": keras.backend.backend(),
            "args": vars(args),
            "train_images": len(x),
            "plain_keras_tuner": plain,
            "babysitter": mine,
            "per_trial_speedup": plain["trial_s"] / mine["trial_s"],
            "whole_search_speedup": plain["search_s"] / mine["search_s"],
            "search_with_final_model_speedup": plain["search_s"]
            / mine["search_with_final_model_s"],
        }
        print(json.dumps(report, indent=2))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
