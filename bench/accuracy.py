"""Accuracy of the default path: Babysitter's ``train`` with its defaults against the keras.io
transfer-learning recipe (and, optionally, a ``tuner search``), each from a cold start.

    python -m bench.pretrain --backbone MobileNetV2 --size 96 --out weights/mnv2-96.weights.h5
    KERAS_BACKEND=tensorflow python -m bench.accuracy DATA --weights weights/mnv2-96.weights.h5 \\
        --backbone MobileNetV2 --size 96 --seeds 3 --epochs-head 5 --epochs-finetune 3 \\
        [--search-trials 20] [--json-out report.json]

DATA is a class-folder dataset (or one with ``train/`` and ``val/`` folders, whose split is kept)
or ``demo:N`` (N procedural demo images). The contestants, each per seed:

  (a) babysitter   ``python -m training train SPLIT --backbone B --weights PATH --image-size N
                   --seed S --epochs-head E1 --epochs-finetune E2 --json``: every other setting is
                   Babysitter's default (learning rates, batch 32, dropout, the top 2 blocks
                   unfrozen, augmentation in phase 2, BatchNorm statistics frozen). The score is
                   the final model's inference-mode validation accuracy from the ``--json`` output
                   (``val.accuracy``), not the best epoch's.
  (b) recipe       The keras.io guide "Transfer learning & fine-tuning" (its end-to-end example)
                   written plainly: the backbone from the same weights file with
                   ``include_top=False``, ``base.trainable = False``, called with
                   ``training=False``; ``RandomFlip("horizontal")`` + ``RandomRotation(0.1)`` on
                   the inputs, the backbone's own preprocessing, ``GlobalAveragePooling2D``,
                   ``Dropout(0.2)``, a softmax ``Dense``; ``Adam()`` for E1 epochs; then
                   ``base.trainable = True`` with BatchNorm kept in inference mode, recompile with
                   ``Adam(1e-3 / 10)`` and fit E2 more epochs. Images decoded with Pillow into
                   NumPy arrays; ``model.fit`` on arrays, batch 32, Keras 3 + NumPy only (no
                   tf.data), so it runs under JAX too. The score is the last epoch's validation
                   accuracy (``fit``'s, inference mode).
                   BatchNorm: under Keras 3, ``base(x, training=False)`` does NOT keep an
                   unfrozen base's BatchNorm in inference mode (``fit`` passes training=True
                   through the Functional model, overriding it: keras-team/keras#20285), so the
                   recipe also sets every BatchNormalization layer back to ``trainable = False``
                   after unfreezing, as the guide's notes on BatchNorm advise.
  (b') recipe-guide-lr     The same with the guide's own fine-tuning rate, ``Adam(1e-5)`` (100×
                   below the head's). Only with ``--contestants ...,recipe-guide-lr``.
  (b'') recipe-as-written  The end-to-end example's code as written (rate 1e-4): no BatchNorm
                   re-freezing, so under Keras 3 BatchNorm trains during fine-tuning (batch
                   statistics, moving averages updated). Only with ``--contestants``.
  (c) search       ``python -m tuner search SPLIT ... --trials T --top-k 1 --epochs-head E1
                   --epochs-finetune E2 --json`` (with ``--search-trials T``): its best model's
                   validation accuracy. Its head trials and the choice of the one configuration
                   to fine-tune are ranked on the same validation images, so its score is
                   optimistic by the selection (the table says so).

What is identical, per seed: the images (the parent audits DATA once and splits it with
``bench/search.py``'s ``make_splits``: stratified and seeded by the seed, or the dataset's own
``val/``, into ``train/`` + ``val/`` folders of hard links every contestant reads, read once into
the page cache first); the decoder (``training.data.images.load_rgb``: Pillow, EXIF upright,
bilinear squash to the size; so every contestant sees the same pixels); the weights file; the
image size; the epochs E1 + E2; batch 32 (Babysitter's default and the guide's older version's;
its current version batches 64); float32 on a CPU. Each contestant x seed is a fresh process
with its own empty ``$BABYSITTER_HOME`` and ``$TMPDIR`` (no decoded images, features or compiled
programs carried over) and pays its own imports, decoding, model building and compilation. The
order of contestants rotates with the seed.

What differs, by design (each is what its user gets by default): Babysitter trains its head on
features computed once without augmentation, then unfreezes only its top 2 blocks with
flip/rotation/zoom augmentation at 1e-4; the recipe trains with augmentation through the whole
frozen backbone every head epoch, then unfreezes the whole base. Babysitter also audits the data,
checks label noise, writes its run store, saves the model and predictions: all inside its wall
time.

Reported: validation accuracy per seed, mean ± sd; wall time per seed (process spawn to exit),
mean ± sd; the differences against the recipe (accuracy in points, mean over seeds and the
paired per-seed differences; time ratio), and the issue's targets: Babysitter ≥ the recipe; a
search ≥ the recipe + 2 points in less than 2x its time.
"""

from __future__ import annotations

import time

_PROCESS_START = time.perf_counter()

import argparse  # noqa: E402
import contextlib  # noqa: E402
import datetime  # noqa: E402
import importlib.metadata  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

from bench.common import emit_report, work_folder  # noqa: E402  (standard library only)
from bench.search import (  # noqa: E402  (standard library only at import time)
    ROOT,
    _fmt,
    _mean_sd,
    child_arguments,
    child_env,
    dataset_arguments,
    make_splits,
    resolve_weights,
    run_arguments,
    source_dataset,
)

TRAIN_VARIANTS = {
    "babysitter": [],
    "babysitter-unfreeze-all": ["--unfreeze", "all"],
    "babysitter-lr-auto": ["--lr", "auto"],
}
"""``train`` with its defaults, and the variants measured against it (their extra flags)."""
CONTESTANTS = (
    *TRAIN_VARIANTS,
    "recipe",
    "recipe-guide-lr",
    "recipe-as-written",
    "recipe-our-augment",
    "search",
)
TITLES = {
    "babysitter": "(a) Babysitter train",
    "babysitter-unfreeze-all": "(a') train --unfreeze all",
    "babysitter-lr-auto": "(a'') train --lr auto",
    "recipe": "(b) keras.io recipe",
    "recipe-guide-lr": "(b') recipe, guide's 1e-5",
    "recipe-as-written": "(b'') recipe, BN trains",
    "recipe-our-augment": "(b''') recipe, our augment",
    "search": "(c) Babysitter search",
}
BATCH = 32  # the guide's batch size and Babysitter's default
HEAD_LR = 1e-3  # Adam()'s default, what the guide's head phase uses
# The recipe's variants: fine-tuning rate, and whether BatchNorm layers are set back to
# trainable=False after ``base.trainable = True`` (in inference mode for real; see run_recipe).
RECIPES = {
    "recipe": {"finetune_lr": HEAD_LR / 10, "freeze_batchnorm": True},
    "recipe-guide-lr": {"finetune_lr": 1e-5, "freeze_batchnorm": True},
    "recipe-as-written": {"finetune_lr": HEAD_LR / 10, "freeze_batchnorm": False},
    # The recipe with Babysitter's augmentation (one affine warp: flip, rotation 0.05, zoom 0.1)
    # in place of RandomFlip + RandomRotation(0.1): does the augmentation explain the gap?
    "recipe-our-augment": {
        "finetune_lr": HEAD_LR / 10,
        "freeze_batchnorm": True,
        "augmentation": "babysitter",
    },
}
FINETUNE_LR = {name: r["finetune_lr"] for name, r in RECIPES.items()}
TARGET_SEARCH_POINTS = 2.0  # a search should beat the recipe by this many points…
TARGET_SEARCH_TIME = 2.0  # …in less than this many times its wall time


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "))
    dataset_arguments(parser)
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 (split and training)")
    parser.add_argument("--epochs-head", type=int, default=5, help="E1: head epochs, everyone")
    parser.add_argument("--epochs-finetune", type=int, default=3, help="E2: fine-tune epochs")
    parser.add_argument("--val-split", type=float, default=0.2)
    parser.add_argument(
        "--search-trials", type=int, default=0, help="add (c): a search of this many trials"
    )
    parser.add_argument(
        "--contestants",
        default="babysitter,recipe",
        help=f"comma-separated subset of {','.join(CONTESTANTS[:-1])} (search: --search-trials)",
    )
    run_arguments(parser)
    # Child process (spawned by the parent): the recipe.
    parser.add_argument("--contestant", choices=RECIPES, help=argparse.SUPPRESS)
    child_arguments(parser)
    args = parser.parse_args(argv)
    if not args.contestant:
        if not args.data or not args.weights:
            parser.error("give DATA and --weights PATH|imagenet|none")
        if args.seeds < 1 or args.epochs_head < 0 or args.epochs_finetune < 0:
            parser.error("--seeds must be at least 1 and the epochs at least 0")
        if args.epochs_head + args.epochs_finetune < 1:
            parser.error("--epochs-head and --epochs-finetune cannot both be 0")
        names = [n.strip() for n in args.contestants.split(",") if n.strip()]
        unknown = sorted(set(names) - set(CONTESTANTS))
        if unknown or not names:
            parser.error(f"--contestants: unknown {unknown}; expected some of {CONTESTANTS}")
        if args.search_trials > 0:
            names.append("search")
        elif "search" in names:
            parser.error("the search contestant needs --search-trials N")
        args.contestants = [n for n in CONTESTANTS if n in names]
    return args


# ---------------------------------------------------------------------------------------------
# The recipe, in its own process.


def load_folders(split_dir: Path, size: int):
    """``(x_train, y_train), (x_val, y_val), class_names``: every image decoded with Pillow
    (``load_rgb``, the decoder every contestant uses) into float32 arrays of ``size`` pixels.
    Classes are the sorted folder names of ``train/``, as Babysitter sorts them."""
    import numpy as np

    from training.data.images import IMAGE_EXTENSIONS, load_rgb

    classes = sorted(p.name for p in (split_dir / "train").iterdir() if p.is_dir())
    out = []
    for split in ("train", "val"):
        images, labels = [], []
        for label, name in enumerate(classes):
            folder = split_dir / split / name
            for path in sorted(folder.iterdir() if folder.is_dir() else []):
                if path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith("."):
                    images.append(load_rgb(path, size))
                    labels.append(label)
        x = np.stack(images).astype("float32") if images else np.zeros((0, size, size, 3))
        out.append((x, np.asarray(labels, dtype="int64")))
    return out[0], out[1], classes


def build_recipe(
    backbone: str, size: int, weights: str | None, classes: int, augmentation: str = "guide"
):
    """The guide's model: ``(model, base)``; the base frozen and called with ``training=False``.
    ``augmentation="babysitter"`` swaps in the classifier's own augmentation layer."""
    import keras
    from keras import layers

    from training.model.backbones import get_backbone
    from training.model.classifier import build_augmentation
    from training.model.layers import ImagePreprocessing

    spec = get_backbone(backbone)
    # keras.applications.<Backbone>(weights=None, include_top=False) + load_weights(PATH)
    base = spec.build(size, weights, include_top=False, pooling=None)
    base.trainable = False
    augment = (
        build_augmentation(seed=None)
        if augmentation == "babysitter"
        else keras.Sequential([layers.RandomFlip("horizontal"), layers.RandomRotation(0.1)])
    )
    inputs = keras.Input(shape=(size, size, 3))
    x = augment(inputs)
    x = ImagePreprocessing(spec.preprocess_mode)(x)  # the backbone's own preprocess_input
    x = base(x, training=False)  # BatchNorm stays in inference mode, even once unfrozen
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.2)(x)
    outputs = layers.Dense(classes, activation="softmax")(x)
    return keras.Model(inputs, outputs), base


def run_recipe(cfg: dict) -> dict:
    """The keras.io transfer-learning recipe on the parent's ``train/`` + ``val/`` folders.

    ``cfg``: split_dir, backbone, size, weights (a path or None), epochs_head, epochs_finetune,
    finetune_lr, seed. Returns its accuracies and the seconds of each part.
    """
    import keras

    keras.utils.set_random_seed(cfg["seed"])
    started = time.perf_counter()
    (x_train, y_train), (x_val, y_val), classes = load_folders(Path(cfg["split_dir"]), cfg["size"])
    decoded = time.perf_counter()
    model, base = build_recipe(
        cfg["backbone"], cfg["size"], cfg["weights"], len(classes), cfg.get("augmentation", "guide")
    )
    fit = {"x": x_train, "y": y_train, "batch_size": BATCH, "verbose": 0}
    fit["validation_data"] = (x_val, y_val)
    history: dict[str, list] = {}

    def train(epochs: int, learning_rate: float | None) -> None:
        optimizer = (
            keras.optimizers.Adam()
            if learning_rate is None
            else keras.optimizers.Adam(learning_rate)
        )
        model.compile(
            optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"]
        )
        if epochs:
            for key, values in model.fit(epochs=epochs, **fit).history.items():
                history.setdefault(key, []).extend(float(v) for v in values)

    train(cfg["epochs_head"], None)  # the head on the frozen base
    head_done = time.perf_counter()
    base.trainable = True  # the whole base; recompile for the change to take effect
    if cfg.get("freeze_batchnorm", True):
        # The guide's note: keep BatchNormalization frozen after unfreezing. Under Keras 3 the
        # ``training=False`` the base was called with does not do it on its own: ``fit`` calls
        # the outer model with training=True and a Functional model passes that down to every
        # layer, overriding it (keras-team/keras#20285), so an unfrozen BatchNormalization
        # would normalise with batch statistics and move its moving averages.
        for layer in base.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = False
    train(cfg["epochs_finetune"], cfg["finetune_lr"])
    done = time.perf_counter()
    val = history.get("val_accuracy", [])
    return {
        "val_accuracy": val[-1] if val else None,
        "best_epoch_val_accuracy": max(val) if val else None,
        "train_accuracy_fit": history["accuracy"][-1] if history.get("accuracy") else None,
        "history": history,
        "images": {"train": len(y_train), "val": len(y_val)},
        "classes": len(classes),
        "finetune_lr": cfg["finetune_lr"],
        "freeze_batchnorm": cfg.get("freeze_batchnorm", True),
        "work_s": done - started,
        "parts_s": {
            "decode": decoded - started,
            "head": head_done - decoded,
            "finetune": done - head_done,
        },
    }


def child(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    import keras  # noqa: F401  (the recipe's imports, inside its clock)

    imported = time.perf_counter()
    weights = None if args.weights in (None, "none") else args.weights
    result = run_recipe(
        {
            "split_dir": args.split_dir,
            "backbone": args.backbone,
            "size": args.size,
            "weights": weights,
            "epochs_head": args.epochs_head,
            "epochs_finetune": args.epochs_finetune,
            **RECIPES[args.contestant],
            "seed": args.seed,
        }
    )
    result.update(import_s=imported - started, startup_s=started - _PROCESS_START)
    Path(args.json_out).write_text(json.dumps(result))


# ---------------------------------------------------------------------------------------------
# Spawning the contestants (parent).


def command(name: str, seed: int, split_dir: Path, weights: str, args, out: Path) -> list[str]:
    """The command line one contestant runs for one seed."""
    common = ["--backbone", args.backbone, "--weights", weights]
    epochs = ["--epochs-head", str(args.epochs_head)]
    epochs += ["--epochs-finetune", str(args.epochs_finetune)]
    seed_arg = ["--seed", str(seed)]
    if name in TRAIN_VARIANTS:
        every = TRAIN_VARIANTS[name]
        return [
            sys.executable, "-m", "training", "train", str(split_dir), *common,
            "--image-size", str(args.size), *seed_arg, *epochs, *every, "--json",
        ]  # fmt: skip
    if name == "search":
        return [
            sys.executable, "-m", "tuner", "search", str(split_dir), *common,
            "--image-size", str(args.size), *seed_arg, "--trials", str(args.search_trials),
            "--top-k", "1", *epochs, "--json",
        ]  # fmt: skip
    return [
        sys.executable, "-m", "bench.accuracy", "--contestant", name, "--split-dir",
        str(split_dir), *common, "--size", str(args.size), *seed_arg, *epochs,
        "--json-out", str(out),
    ]  # fmt: skip


def _json_document(text: str) -> dict:
    """The one JSON document ``--json`` prints on stdout (tolerating lines before it)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        start = text.find("\n{")
        if start < 0:
            raise
        return json.loads(text[start + 1 :])


def parse_babysitter(document: dict) -> dict:
    """``train --json`` / ``search --json`` → the fields the report compares."""
    val = (document.get("val") or {}).get("accuracy")
    result = {
        "val_accuracy": val,
        "train_accuracy": (document.get("train") or {}).get("accuracy"),
        "best_epoch_val_accuracy": document.get("best_val_accuracy"),
        "run_id": document.get("run_id"),
        "images": document.get("splits"),
        "epochs": document.get("epochs"),
        "seconds": document.get("seconds"),
    }
    if "head_val_accuracy" in document:  # a search
        result.update(
            head_val_accuracy=document["head_val_accuracy"],
            hyperparameters=document.get("hyperparameters"),
            trials=document.get("trials"),
        )
    findings = document.get("findings") or []
    result["findings"] = sorted(
        f"{f.get('check')}: {f.get('status')}" for f in findings if f.get("status") != "ok"
    )
    return result


def run_one(name: str, seed: int, split_dir: Path, weights: str, args, work: Path) -> dict:
    """One contestant x seed in a fresh process with an empty home; its result and wall time."""
    tag = f"{name}-s{seed}-{time.monotonic_ns()}"
    out = work / "results" / f"{tag}.json"
    out.parent.mkdir(exist_ok=True)
    log = work / "logs" / f"{tag}.log"
    log.parent.mkdir(exist_ok=True)
    home = work / "homes" / f"{name}-s{seed}" / "home"
    env = child_env(home, work / "tmp" / tag)
    env.pop("BABYSITTER_COMPILE_CACHE", None)  # no compiled programs shared between homes
    argv = command(name, seed, split_dir, weights, args, out)
    print(f"  {TITLES[name]:28s} seed {seed} …", end=" ", flush=True, file=sys.stderr)
    started = time.perf_counter()
    with open(log, "w") as err:
        try:
            proc = subprocess.run(
                argv,
                env=env,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                timeout=args.timeout,
                cwd=ROOT,
            )
            code, stdout = proc.returncode, proc.stdout
        except subprocess.TimeoutExpired as expired:
            code, stdout = -9, expired.stdout or ""
            stdout = stdout.decode(errors="replace") if isinstance(stdout, bytes) else stdout
    wall = time.perf_counter() - started
    base = {"contestant": name, "seed": seed, "command": argv, "process_s": wall}
    try:
        if code != 0:
            raise RuntimeError(f"exit {code}")
        if name in TRAIN_VARIANTS or name == "search":
            result = parse_babysitter(_json_document(stdout))
        else:
            result = json.loads(out.read_text())
    except Exception as error:
        tail = log.read_text(errors="replace")[-3000:] + stdout[-1000:]
        print(f"FAILED ({error}); log {log}:\n{tail}", file=sys.stderr)
        return {**base, "error": str(error), "log_tail": tail}
    print(f"val {_fmt(result['val_accuracy'])}, {wall:.1f} s", file=sys.stderr)
    return {**base, **result}


# ---------------------------------------------------------------------------------------------
# Summaries.


def summarize(runs: list[dict]) -> dict:
    ok = [r for r in runs if "error" not in r and r.get("val_accuracy") is not None]
    acc_mean, acc_sd = _mean_sd([r["val_accuracy"] for r in ok])
    wall_mean, wall_sd = _mean_sd([r["process_s"] for r in ok])
    best_mean, _ = _mean_sd([r.get("best_epoch_val_accuracy") for r in ok])
    return {
        "runs": len(runs),
        "failed_runs": len(runs) - len(ok),
        "seeds": [r["seed"] for r in runs],
        "val_accuracy_per_seed": [None if r.get("error") else r.get("val_accuracy") for r in runs],
        "process_s_per_seed": [None if r.get("error") else r["process_s"] for r in runs],
        "val_accuracy": acc_mean,
        "val_sd": acc_sd,
        "process_s": wall_mean,
        "process_sd": wall_sd,
        "best_epoch_val_accuracy": best_mean,
        "train_accuracy": _mean_sd([r.get("train_accuracy") for r in ok])[0],
    }


def compare_to(theirs: dict, ours_runs: list[dict], recipe_runs: list[dict], recipe: dict) -> dict:
    """A contestant against the recipe: accuracy in points (of the means, and paired per seed),
    and the ratio of mean wall times."""
    paired = [
        100 * (o["val_accuracy"] - r["val_accuracy"])
        for o, r in zip(ours_runs, recipe_runs, strict=True)
        if "error" not in o and "error" not in r
        if o.get("val_accuracy") is not None and r.get("val_accuracy") is not None
    ]
    mean, sd = _mean_sd(paired)
    points = (
        100 * (theirs["val_accuracy"] - recipe["val_accuracy"])
        if theirs["val_accuracy"] is not None and recipe["val_accuracy"] is not None
        else None
    )
    ratio = theirs["process_s"] / recipe["process_s"] if theirs["process_s"] else None
    return {
        "points": points,
        "paired_points": paired,
        "paired_mean": mean,
        "paired_sd": sd,
        "seeds_ahead": sum(p > 0 for p in paired),
        "seeds_tied": sum(p == 0 for p in paired),
        "time_ratio": ratio if recipe["process_s"] else None,
    }


def targets(ratios: dict) -> dict:
    out = {}
    if "babysitter" in ratios and ratios["babysitter"]["points"] is not None:
        out["babysitter_at_least_recipe"] = {
            "target": "Babysitter's default val accuracy >= the recipe's (mean over seeds)",
            "met": ratios["babysitter"]["points"] >= 0,
        }
    s = ratios.get("search")
    if s and s["points"] is not None and s["time_ratio"] is not None:
        out["search_beats_recipe"] = {
            "target": f"a search >= the recipe + {TARGET_SEARCH_POINTS:g} points "
            f"in < {TARGET_SEARCH_TIME:g}x its wall time",
            "accuracy_met": s["points"] >= TARGET_SEARCH_POINTS,
            "time_met": s["time_ratio"] < TARGET_SEARCH_TIME,
            "met": s["points"] >= TARGET_SEARCH_POINTS and s["time_ratio"] < TARGET_SEARCH_TIME,
        }
    return out


def _seeds(values: list, digits: int) -> str:
    return " ".join(_fmt(v, digits) for v in values)


def print_table(report: dict, out) -> None:
    a, d = report["args"], report["data"]
    print(
        f"\nAccuracy benchmark · {report['backend']} · {report['machine']['cpus']} CPUs · "
        f"{report['date'][:10]}\n{a['backbone']} {a['size']} px, weights "
        f"{report['weights']['kind']} ({report['weights']['path']}); {d['source']}: "
        f"{d['images']['train']} train / {d['images']['val']} val images, {d['classes']} classes "
        f"({d['split']}); epochs {a['epochs_head']} head + {a['epochs_finetune']} fine-tune, "
        f"batch {BATCH}, seeds 0..{a['seeds'] - 1}",
        file=out,
    )
    seeds = a["seeds"]
    acc_w, wall_w = max(6 * seeds, 12), max(7 * seeds, 14)
    print(
        f"{'':28s}{'val acc per seed':>{acc_w}s}{'mean ± sd':>16s}  "
        f"{'wall s per seed':>{wall_w}s}{'mean ± sd':>15s}",
        file=out,
    )
    for name, s in report["summary"].items():
        print(
            f"{TITLES[name]:28s}{_seeds(s['val_accuracy_per_seed'], 3):>{acc_w}s}"
            f"{_fmt(s['val_accuracy']) + ' ± ' + _fmt(s['val_sd']):>16s}  "
            f"{_seeds(s['process_s_per_seed'], 1):>{wall_w}s}"
            f"{_fmt(s['process_s'], 1) + ' ± ' + _fmt(s['process_sd'], 1):>15s}",
            file=out,
        )
        extra = f"best epoch's val {_fmt(s['best_epoch_val_accuracy'])}"
        if s["train_accuracy"] is not None:
            extra += f", train (inference mode) {_fmt(s['train_accuracy'])}"
        if s["failed_runs"]:
            extra += f"; FAILED runs: {s['failed_runs']}"
        print(f"{'':30s}{extra}", file=out)
        for note in report.get("notes", {}).get(name, []):
            print(f"{'':30s}note: {note}", file=out)
    for name, r in report["ratios"].items():
        paired = ", ".join(f"{p:+.1f}" for p in r["paired_points"])
        print(
            f"{TITLES[name]} − {TITLES['recipe']}: {_signed(r['points'])} points "
            f"(per seed {paired}; {r['seeds_ahead']} ahead, {r['seeds_tied']} tied of "
            f"{len(r['paired_points'])}), wall time {_fmt(r['time_ratio'], 2)}×",
            file=out,
        )
    for t in report["targets"].values():
        verdict = "met" if t["met"] else "MISSED"
        if "accuracy_met" in t:
            verdict += (
                f" (accuracy {'met' if t['accuracy_met'] else 'missed'}, "
                f"time {'met' if t['time_met'] else 'missed'})"
            )
        print(f"target: {t['target']}: {verdict}", file=out)


def _signed(value) -> str:
    return "–" if value is None else f"{value:+.1f}"


def versions() -> dict:
    found = {"python": platform.python_version()}
    for name in ("keras", "tensorflow", "jax", "numpy", "keras-tuner", "pillow"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found[name] = importlib.metadata.version(name)
    return found


def notes(name: str, args) -> list[str]:
    if name == "search":
        return [
            f"{args.search_trials} head trials and the top-1 fine-tune are chosen on these "
            "validation images: its score is optimistic by that selection"
        ]
    if name in RECIPES:
        bn = (
            "BatchNorm layers set back to trainable=False (inference mode)"
            if RECIPES[name]["freeze_batchnorm"]
            else "BatchNorm left trainable: Keras 3 trains it despite training=False"
        )
        augment = (
            "; Babysitter's augmentation layer instead of RandomFlip + RandomRotation(0.1)"
            if RECIPES[name].get("augmentation") == "babysitter"
            else ""
        )
        return [f"fine-tune lr {FINETUNE_LR[name]:g}, the whole base unfrozen, {bn}{augment}"]
    if name == "babysitter-unfreeze-all":
        return ["its defaults but --unfreeze all: fine-tune lr 1e-4, the whole base unfrozen"]
    if name == "babysitter-lr-auto":
        return ["its defaults but --lr auto: the head's rate from the range test on its features"]
    return ["its defaults: fine-tune lr 1e-4, the top 2 blocks unfrozen"]


def compare(args, work: Path, folders: list[Path], weights: str) -> dict:
    runs: dict[str, list[dict]] = {name: [] for name in args.contestants}
    for seed, folder in enumerate(folders):
        shift = seed % len(args.contestants)
        order = args.contestants[shift:] + args.contestants[:shift]  # who goes first rotates
        for name in order:
            runs[name].append(run_one(name, seed, folder, weights, args, work))
    summary = {name: summarize(rs) for name, rs in runs.items()}
    ratios = {}
    if "recipe" in summary:
        recipe = summary["recipe"]
        for name in args.contestants:
            if name != "recipe":
                ratios[name] = compare_to(summary[name], runs[name], runs["recipe"], recipe)
    return {
        "runs": runs,
        "summary": summary,
        "ratios": ratios,
        "targets": targets(ratios),
        "notes": {name: notes(name, args) for name in args.contestants},
    }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.contestant:
        return child(args)
    with work_folder(args.workdir, "bench_accuracy_") as work:
        source = source_dataset(args.data, args.size, work)
        folders, data = make_splits(source, args.seeds, args.val_split, work)
        if args.data.startswith("demo:"):
            data["source"] = args.data
        weights, weights_info = resolve_weights(args, work)
        report = {
            "benchmark": "bench/accuracy.py",
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "backend": os.environ.get("KERAS_BACKEND", "tensorflow"),
            "machine": {
                "cpus": os.cpu_count(),
                "platform": platform.platform(),
                "processor": platform.processor() or platform.machine(),
            },
            "versions": versions(),
            "args": {
                k: v for k, v in vars(args).items() if k not in ("contestant", "seed", "split_dir")
            },
            "batch": BATCH,
            "recipes": RECIPES,
            "weights": weights_info,
            "data": data,
        }
        if args.weights == "none":
            report["warning"] = "random weights: the recipe's frozen features mean little"
        report.update(compare(args, work, folders, weights))
        out = sys.stderr if args.json else sys.stdout
        print_table(report, out)
        emit_report(report, args.json, args.json_out)


if __name__ == "__main__":
    main()
