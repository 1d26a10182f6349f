"""Phase-2 throughput of ``training.fit.two_phase.train`` vs plain ``model.fit``, like for like.

Same process, same backbone, image size, batch size, images (generated JPEGs), optimizer (Adam at
``TrainConfig.finetune_lr``), loss (sparse cross-entropy), precision, ``jit_compile``
(``training.fit.device.resolve_jit("auto")`` on both sides) and no augmentation. Every layer is
unfrozen on both sides (``unfreeze="all"`` for ours). Two BatchNorm treatments, each run on both
sides, because the work per step differs (a review measured ~1.15x more with trained BatchNorm
on a CPU):

  frozen BN   plain: the keras-io transfer-learning recipe for fine-tuning a pretrained model:
                     BatchNorm layers non-trainable and ``backbone(x, training=False)``, every
                     other layer trainable, weights loaded from the weights file;
              ours:  ``train(weights=FILE)``: pretrained, so ``set_trainable_top_blocks(...,
                     train_batchnorm=False)`` and the backbone called with ``training=False``.
  trained BN  plain: random init, everything trainable, BatchNorm in training mode;
              ours:  ``train(weights="none")``: BatchNorm trains (momentum lowered by
                     ``speed_up_moving_averages``, no cost per step). Ours also re-estimates the
                     BatchNorm statistics (``recalibrate_batchnorm``) before phase 1 and after
                     phase 2, outside the epochs: that cost is measured separately (the same
                     function on the same images) and printed beside the row, not in img/s.

Plain: ``Input(uint8) → ImagePreprocessing(spec.preprocess_mode)`` (the backbone's own
preprocessing, as ours) ``→ backbone (pooling="avg") → Dropout → Dense softmax (float32)``,
``model.fit`` on NumPy arrays decoded in memory. Ours: ``train(epochs_head=0, val_split=0)``, fed
from the uint8 memmap cache through ``ImageBatches``; its model has the same head and one more
metric (``data_loss``), which are part of what it costs.

Timing (the same rule on both sides): the wall clock (``time.perf_counter``) is read once per
epoch, always at the same point of the epoch loop, and an epoch's time is the gap between two
consecutive readings. Whatever that point is, such a gap holds exactly one turn of the loop: all
of one epoch's batches and every per-epoch hook and write, each once. The first epoch (tracing,
compiling) is not timed: E epochs give E-1 gaps, and img/s = images x (E-1) / (sum of the gaps),
a mean, so an occasional checkpoint counts in full.

- plain: read in the ``on_epoch_end`` of its one callback.
- ours: read by the run store itself, right after ``RunStore.record_epoch`` of a phase-2 epoch
  has committed its SQLite write (``train`` takes the store as an argument; ``EpochClock`` is a
  ``RunStore`` that delegates every call unchanged and only adds the reading; nothing is patched).
  Inside each timed gap, therefore: the previous epoch's heartbeat write and ``LossExplosionStop``
  hook, this epoch's ``on_epoch_begin`` hooks, all its batches (and RunLogger's 30 s heartbeats),
  ``ThrottledBackupAndRestore``'s checkpoint when one is due (whatever the callback order, it
  lands inside some gap), the learning-rate schedule, RunLogger's read-back of the metrics and
  its write of this epoch. Whether a checkpoint was written inside each gap is read from the
  backup file's modification time and printed ("ckpt"): with the default 60 s throttle one is
  written at the end of epoch 1 (not timed), then at most one a minute, so epochs of a few
  seconds rarely pay for one and epochs over a minute pay for one each, as in a user's run.
  RunLogger's own "seconds" (the old measure) stop before its writes; the difference is printed
  ("not in log"). With today's callback order the checkpoint happens to fall inside them.
- Inside no gap, on either side: the first epoch; for ours everything ``train`` does outside
  phase 2's epochs (audit, decode-once cache, the backbone features for ``label_noise`` or their
  feature cache, the BatchNorm recalibrations, evaluation, predictions, saving ``model.keras``:
  all in "run s", the whole ``train`` call), and after the last epoch its heartbeat and
  ``on_train_end`` (removing the checkpoint folder).

``--weights PATH`` takes a pretrained notop ``.weights.h5`` (e.g. from ``bench/pretrain.py``) for
the frozen-BN rows; without it the random-init backbone is saved to a file and loaded from there:
a fair comparison of the treatment, but not pretrained numbers (the output says which).

    KERAS_BACKEND=jax python -m bench.phase2_throughput --images 2048 --size 224 --epochs 3
    KERAS_BACKEND=tensorflow python -m bench.phase2_throughput --backbone MobileNetV2 \\
        --images 512 --size 96 --batch 32 --epochs 4 --precisions float32
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import write_jpegs
from training.store import RunStore

TREATMENTS = ("frozen", "trained")
LABELS = {
    "frozen": "frozen BN (inference mode, not trainable)",
    "trained": "trained BN (training mode, random init)",
}


def steady_state(stamps: list[float], images: int) -> tuple[float, list[float]]:
    """img/s over the gaps between consecutive per-epoch readings (so epoch 1 is left out)."""
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    if not gaps:
        return float("nan"), gaps
    return images * len(gaps) / sum(gaps), gaps


def plain_fit(
    backbone: str,
    x: np.ndarray,
    y: np.ndarray,
    batch: int,
    epochs: int,
    precision: str,
    treatment: str,
    weights_file: Path,
) -> dict:
    """The textbook ``model.fit`` on arrays, under one BatchNorm treatment."""
    import keras

    from training.config import TrainConfig
    from training.fit.batchnorm import batchnorm_layers
    from training.fit.device import resolve_jit
    from training.model.backbones import get_backbone
    from training.model.layers import ImagePreprocessing

    keras.backend.clear_session()  # resets the dtype policy too: set it afterwards
    keras.config.set_dtype_policy(precision)
    spec = get_backbone(backbone)
    frozen = treatment == "frozen"
    base = spec.build(x.shape[1], weights_file if frozen else None)
    base.trainable = True
    inputs = keras.Input(x.shape[1:], dtype="uint8")
    h = ImagePreprocessing(spec.preprocess_mode)(inputs)
    if frozen:  # the keras-io recipe: BatchNorm keeps its statistics, in inference mode
        for layer in batchnorm_layers(base):
            layer.trainable = False
        h = base(h, training=False)
    else:
        h = base(h)
    defaults = TrainConfig(data=".", backbone=backbone)
    h = keras.layers.Dropout(defaults.dropout)(h)
    out = keras.layers.Dense(int(y.max()) + 1, activation="softmax", dtype="float32")(h)
    model = keras.Model(inputs, out)
    model.compile(
        optimizer=keras.optimizers.Adam(defaults.finetune_lr),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        jit_compile=resolve_jit(defaults.jit),
    )
    stamps: list[float] = []

    class Clock(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            stamps.append(time.perf_counter())

    model.fit(x, y, batch_size=batch, epochs=epochs, verbose=0, callbacks=[Clock()])
    img_s, gaps = steady_state(stamps, len(x))
    trainable = int(sum(np.prod(w.shape) for w in base.trainable_weights))
    keras.config.set_dtype_policy("float32")
    return {"img_s": img_s, "gaps": gaps, "backbone_trainable": trainable}


class EpochClock(RunStore):
    """The run store ``train`` writes to, unchanged, plus a clock reading after each phase-2
    epoch's record has been written, and whether a checkpoint was written since the last one."""

    def __init__(self) -> None:
        super().__init__()
        self.stamps: list[float] = []
        self.logger_seconds: list[float] = []
        self.checkpointed: list[bool] = []
        self._backup_mtime: int | None = None

    def record_epoch(self, run_id: str, phase: str, epoch: int, metrics: dict) -> None:
        super().record_epoch(run_id, phase, epoch, metrics)
        if phase != "finetune":
            return
        self.stamps.append(time.perf_counter())
        self.logger_seconds.append(float(metrics.get("seconds", float("nan"))))
        backup = self.artifact(run_id, "backup_phase2") / "latest.weights.h5"
        mtime = backup.stat().st_mtime_ns if backup.exists() else None
        self.checkpointed.append(mtime is not None and mtime != self._backup_mtime)
        self._backup_mtime = mtime


def ours(
    data: Path,
    backbone: str,
    size: int,
    batch: int,
    epochs: int,
    precision: str,
    treatment: str,
    weights_file: Path,
    augment: bool = False,
) -> dict:
    """``training.fit.two_phase.train`` phase 2 only, timed per epoch by ``EpochClock``."""
    import keras

    from training.config import TrainConfig
    from training.errors import TrainingDiverged
    from training.fit.two_phase import train

    keras.backend.clear_session()
    config = TrainConfig(
        data=str(data),
        backbone=backbone,
        weights=str(weights_file) if treatment == "frozen" else "none",
        image_size=size,
        batch_size=batch,
        epochs_head=0,
        epochs_finetune=epochs,
        unfreeze="all",
        val_split=0.0,
        augment=augment,
        precision=precision,
    )
    assert config.pretrained == (treatment == "frozen")
    clock = EpochClock()
    messages: list[str] = []
    stopped = None
    started = time.perf_counter()
    try:
        result = train(config, clock, verbose=0, echo=messages.append)
        images = result.summary["splits"]["train"]
    except TrainingDiverged as error:  # timed up to where it stopped, and said so
        stopped = str(error)
        images = len(list(data.rglob("*.jpg")))
    run_seconds = time.perf_counter() - started
    keras.config.set_dtype_policy("float32")
    img_s, gaps = steady_state(clock.stamps, images)
    phase2 = next((m for m in messages if m.startswith("Phase 2")), "")
    count = re.search(r"\(([\d,]+) trainable parameters in the backbone\)", phase2)
    return {
        "img_s": img_s,
        "gaps": gaps,
        "images": images,
        "checkpoints": sum(clock.checkpointed[1:]),
        "checkpoint_epochs": [i + 1 for i, done in enumerate(clock.checkpointed) if done],
        # What the old measurement (RunLogger's "seconds") left out, per timed epoch.
        "beyond_logger_s": float(np.mean(np.subtract(gaps, clock.logger_seconds[1:])))
        if gaps
        else float("nan"),
        "run_s": run_seconds,
        "backbone_trainable": int(count.group(1).replace(",", "")) if count else None,
        "stopped": stopped,
    }


def recalibration_seconds(backbone: str, x: np.ndarray, batch: int, precision: str) -> float:
    """One ``recalibrate_batchnorm`` as ``train`` runs it for random weights (twice per run)."""
    import keras

    from training.fit.batchnorm import recalibrate_batchnorm
    from training.model.backbones import get_backbone
    from training.model.layers import ImagePreprocessing

    keras.backend.clear_session()
    keras.config.set_dtype_policy(precision)
    spec = get_backbone(backbone)
    base = spec.build(x.shape[1], None)
    preprocess = ImagePreprocessing(spec.preprocess_mode)
    started = time.perf_counter()
    recalibrate_batchnorm(base, preprocess, x, np.arange(len(x)), batch, seed=0)
    seconds = time.perf_counter() - started
    keras.config.set_dtype_policy("float32")
    return seconds


def machine() -> dict:
    """Backend, versions, CPU and load: the context that the img/s depend on."""
    import keras

    from training.fit.device import accelerator

    backend = keras.backend.backend()
    module = __import__("jax" if backend == "jax" else backend)
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "backend": f"{backend} {getattr(module, '__version__', '?')}",
        "keras": keras.__version__,
        "python": platform.python_version(),
        "cpu": cpu,
        "cores": cores,
        "load_avg_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "accelerator": accelerator() or "none",
    }


def measure_row(args, data, x, y, precision, treatment, weights_file) -> dict:
    common = (args.backbone, args.size, args.batch, args.epochs, precision, treatment)

    def say(what: str) -> None:
        print(f"[{precision}, {treatment} BN] {what}…", file=sys.stderr, flush=True)

    say("plain model.fit")
    plain = plain_fit(
        args.backbone, x, y, args.batch, args.epochs, precision, treatment, weights_file
    )
    say("training.fit.two_phase.train")
    mine = ours(data, *common, weights_file)
    row = {
        "precision": precision,
        "bn": treatment,
        "treatment": LABELS[treatment],
        "plain_img_s": round(plain["img_s"], 1),
        "training_img_s": round(mine["img_s"], 1),
        "ratio": round(mine["img_s"] / plain["img_s"], 3),
        "timed_epochs": len(mine["gaps"]),
        "plain_epoch_s": [round(g, 3) for g in plain["gaps"]],
        "training_epoch_s": [round(g, 3) for g in mine["gaps"]],
        "training_checkpoints_timed": mine["checkpoints"],
        "training_checkpoint_after_epochs": mine["checkpoint_epochs"],
        "training_beyond_logger_s_per_epoch": round(mine["beyond_logger_s"], 4),
        "training_run_s": round(mine["run_s"], 1),
        "backbone_trainable": {
            "plain": plain["backbone_trainable"],
            "training": mine["backbone_trainable"],
        },
    }
    if mine["stopped"]:
        row["training_stopped"] = mine["stopped"]
    if treatment == "trained":
        say("recalibrate_batchnorm")
        row["recalibration_s"] = round(
            recalibration_seconds(args.backbone, x, args.batch, precision), 2
        )
    if args.augmented:
        say("training.fit.two_phase.train with augmentation")
        augmented = ours(data, *common, weights_file, augment=True)
        row["augmented_img_s"] = round(augmented["img_s"], 1)
        row["augmented_ratio"] = round(augmented["img_s"] / plain["img_s"], 3)
        row["augmented_checkpoints_timed"] = augmented["checkpoints"]
    return row


def print_table(rows: list[dict]) -> None:
    print(
        f"{'precision':>15}  {'BatchNorm':<42} {'plain':>9} {'training':>9} {'ratio':>6}"
        f"  {'ckpt':>4}  {'not in log':>10}  {'run s':>6}"
    )
    for row in rows:
        print(
            f"{row['precision']:>15}  {row['treatment']:<42} {row['plain_img_s']:>9.1f}"
            f" {row['training_img_s']:>9.1f} {row['ratio']:>6.3f}"
            f"  {row['training_checkpoints_timed']:>2}/{row['timed_epochs']:<1}"
            f"  {row['training_beyond_logger_s_per_epoch']:>8.3f} s  {row['training_run_s']:>6.1f}"
        )
        if "augmented_img_s" in row:
            print(
                f"{'':>15}  {'  + augmentation (training only, vs plain)':<42} {'':>9}"
                f" {row['augmented_img_s']:>9.1f} {row['augmented_ratio']:>6.3f}"
                f"  {row['augmented_checkpoints_timed']:>2}/{row['timed_epochs']:<1}"
            )
        if "recalibration_s" in row:
            epochs = row["recalibration_s"] / float(np.mean(row["training_epoch_s"]))
            print(
                f"{'':>15}  training also recalibrates BatchNorm before phase 1 and after phase 2,"
                f" outside the epochs: {row['recalibration_s']:.2f} s each (≈{epochs:.2f} epochs)"
            )
        trainable = row["backbone_trainable"]
        if trainable["training"] is not None and trainable["training"] != trainable["plain"]:
            print(f"{'':>15}  WARNING: trainable backbone parameters differ: {trainable}")
        if "training_stopped" in row:
            print(f"{'':>15}  WARNING: training stopped early: {row['training_stopped']}")
    print(
        "img/s: images x (E-1) / wall time of epochs 2..E (epoch 1 excluded on both sides);"
        " ratio = training / plain.\nckpt: timed epochs in which training wrote its throttled"
        " checkpoint (at most one a minute); not in log: time per timed epoch that RunLogger's"
        " own 'seconds' leave out (its store writes, the explosion watch, Keras' epoch turnover),"
        " included in img/s; run s: the whole train() call."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=3, help="per run; the first is not timed")
    parser.add_argument("--backbone", default="ResNet50")
    parser.add_argument("--precisions", default="float32,mixed_bfloat16")
    parser.add_argument("--bn", default="frozen,trained", help="treatments: frozen, trained")
    parser.add_argument(
        "--weights",
        type=Path,
        default=None,
        help="pretrained notop .weights.h5 for the frozen-BN rows (default: random init saved)",
    )
    parser.add_argument(
        "--augmented", action="store_true", help="also time training with augmentation"
    )
    parser.add_argument("--json", action="store_true", help="one JSON document, no table")
    args = parser.parse_args()
    treatments = [t.strip() for t in args.bn.split(",") if t.strip()]
    if args.epochs < 2 or not treatments or set(treatments) - set(TREATMENTS):
        parser.error("--epochs must be at least 2 and --bn a list of 'frozen', 'trained'")
    work = Path(tempfile.mkdtemp(prefix="bench-phase2-"))
    try:
        run(args, treatments, work)
    finally:  # JPEGs, caches and one saved model per run: hundreds of MB at 224 px
        shutil.rmtree(work, ignore_errors=True)


def run(args: argparse.Namespace, treatments: list[str], work: Path) -> None:
    """Generate the images, measure every (precision, treatment) row, print them."""
    from training.data.images import load_rgb
    from training.model.backbones import get_backbone

    os.environ["BABYSITTER_HOME"] = str(work / "home")
    data = work / "jpegs"
    write_jpegs(data, args.images, args.size)
    files = sorted(data.rglob("*.jpg"))
    x = np.stack([load_rgb(f, args.size) for f in files])
    y = np.array([int(f.parent.name.split("_")[1]) for f in files], dtype=np.int32)
    if args.weights is not None:
        weights_file = args.weights.resolve()
        get_backbone(args.backbone).build(args.size, weights_file)  # fails early if it won't load
        weights_note = f"frozen-BN rows load {weights_file} on both sides"
    else:
        weights_file = work / "backbone.weights.h5"
        get_backbone(args.backbone).build(args.size, None).save_weights(weights_file)
        weights_note = (
            "no --weights: the random-init backbone was saved to a file that both frozen-BN sides "
            "load (a fair comparison of the treatment, not pretrained numbers)"
        )

    context = {
        "machine": machine(),
        "backbone": args.backbone,
        "size": args.size,
        "batch": args.batch,
        "images": args.images,
        "epochs": args.epochs,
        "weights": str(args.weights) if args.weights else None,
        "weights_note": weights_note,
    }
    rows = []
    for precision in args.precisions.split(","):
        for treatment in treatments:
            rows.append(measure_row(args, data, x, y, precision, treatment, weights_file))
            if not args.json:
                print(json.dumps(rows[-1]), flush=True)
    if args.json:
        print(json.dumps({**context, "rows": rows}, indent=1))
        return
    m = context["machine"]
    print(
        f"backend={m['backend']} keras={m['keras']} cpu={m['cpu']} ({m['cores']} cores,"
        f" load {m['load_avg_1m']} at start) accelerator={m['accelerator']}\n"
        f"backbone={args.backbone} size={args.size} batch={args.batch} images={args.images}"
        f" epochs={args.epochs} (epoch 1 not timed)\n{weights_note}"
    )
    print_table(rows)


if __name__ == "__main__":
    main()
