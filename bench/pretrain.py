"""Pretrain a backbone on the procedural source task and save it for ``--weights PATH``.

ImageNet weights cannot be downloaded without the internet, yet the default user path (pretrained
weights: BatchNorm frozen with its learned statistics, only the top blocks unfrozen) is the one
most users take, so benchmarks and tests need *some* pretrained backbone. This script trains one
from random weights on ``bench/source_task.py`` (many procedural classes, none of them a class we
benchmark on, so what a benchmark measures is transfer) with plain ``model.fit`` on NumPy arrays,
BatchNorm trained, and saves the notop backbone with ``save_weights``: the file
``get_backbone(name).build(size, path)`` loads, at this or any other image size (convolution
weights do not depend on it). A JSON sidecar ``<out>.json`` records what the weights are
(backbone, size, classes, images, epochs, source accuracy, seconds, date) so a benchmark can say.

    python -m bench.pretrain --backbone MobileNetV2 --size 96 --classes 24 --images 4800 \\
        --epochs 8 --out weights/mobilenetv2-96.weights.h5

BatchNorm: a backbone trained from scratch for a few hundred steps ends with moving averages
that lag its weights (MobileNetV2's momentum is 0.999), and a pretrained backbone is used with
those statistics frozen. So the momentum is lowered while training and the statistics are
re-estimated over the training images at the end (``training.fit.batchnorm``), as ``train`` does for
``--weights none``; the accuracies reported are inference-mode ones, computed with them.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import sys
import time
from pathlib import Path

import keras
import numpy as np

from bench.source_task import make_source_arrays, source_classes
from training.errors import BabysitterError
from training.fit.batchnorm import recalibrate_batchnorm, speed_up_moving_averages
from training.model.backbones import BackboneSpec, get_backbone
from training.model.layers import ImagePreprocessing

WEIGHTS_SUFFIX = ".weights.h5"
VAL_SHARE = 0.2  # validation images, as a share of the training images (a separate stream)
# BatchNorm re-estimation runs the backbone eagerly, where each call costs a fixed dispatch
# overhead (seconds under JAX): a few large batches, up to 2,048 images, estimate as well as many.
RECALIBRATION_BATCH = 128
RECALIBRATION_IMAGES = 2048
LEARNING_RATE = 2e-3


def sidecar_path(out: Path) -> Path:
    """``weights/x.weights.h5`` → ``weights/x.weights.h5.json``."""
    return out.with_name(out.name + ".json")


def build_source_model(
    spec: BackboneSpec, image_size: int, classes: int, seed: int
) -> tuple[keras.Model, keras.Model, keras.layers.Layer]:
    """``uint8 image → backbone preprocessing → backbone → dropout → softmax``.

    The preprocessing is the same layer ``training.model.classifier`` puts in front of the
    backbone, so the backbone learns on the pixel scale it will later be fine-tuned on. No
    augmentation: the generator already varies position, scale, colour and noise, and a flip
    would turn one grating class into another.
    """
    backbone = spec.build(image_size, None, include_top=False, pooling="avg")
    preprocess = ImagePreprocessing(spec.preprocess_mode, name="preprocess")
    image = keras.Input((image_size, image_size, 3), dtype="uint8", name="image")
    x = backbone(preprocess(image))
    x = keras.layers.Dropout(0.2, seed=seed, name="source_dropout")(x)
    outputs = keras.layers.Dense(classes, activation="softmax", name="source_logits")(x)
    return keras.Model(image, outputs, name="source_task"), backbone, preprocess


def _accuracy(model: keras.Model, x: np.ndarray, y: np.ndarray, batch_size: int) -> float:
    """Inference-mode accuracy (BatchNorm moving statistics, no dropout)."""
    probabilities = model.predict(x, batch_size=batch_size, verbose=0)
    return float(np.mean(np.argmax(probabilities, axis=-1) == y))


def _check_args(out: Path, classes: int, images: int, epochs: int, batch_size: int) -> None:
    if not out.name.endswith(WEIGHTS_SUFFIX):
        raise ValueError(
            f"Expected an output path ending in {WEIGHTS_SUFFIX} (what save_weights writes and "
            f"--weights PATH loads). Received: {str(out)!r}"
        )
    for name, value, low in (("epochs", epochs, 1), ("batch_size", batch_size, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"Expected {name} to be an integer >= {low}. Received: {value!r}")
    source_classes(classes)  # validates the class count
    if isinstance(images, bool) or not isinstance(images, int) or images < 2 * classes:
        raise ValueError(
            f"Expected images to be an integer >= 2 x classes ({2 * classes}). Received: {images!r}"
        )


def pretrain(
    backbone: str,
    image_size: int,
    out: Path,
    *,
    classes: int,
    images: int,
    epochs: int,
    seed: int = 0,
    batch_size: int = 64,
    verbose: int = 1,
    learning_rate: float = LEARNING_RATE,
    run_eagerly: bool = False,
) -> dict:
    """Train ``backbone`` from random weights on the source task and save its weights to ``out``.

    Args:
        backbone: Any name in the registry (``"MobileNetV2"``).
        image_size: Square input size of the source images (at least the backbone's minimum).
        out: Where to write the notop backbone's weights; must end in ``.weights.h5``.
        classes: Source classes (2..``bench.source_task.MAX_CLASSES``).
        images: Training images, spread evenly over the classes; a further 20% (a disjoint
            stream of the same generator) are the validation images.
        epochs: Passes over the training images.
        seed: Seeds the images, the initial weights and the shuffling.
        batch_size: Images per step.
        verbose: 0 silent, 1 a line per epoch (with the validation accuracy, which a silent
            run skips: one function less to compile) and the result.
        learning_rate: Peak Adam learning rate (cosine decay to 0 over the run).
        run_eagerly: Train without compiling the step: under TensorFlow, a handful of steps
            (a test's fixture) costs less than tracing MobileNetV2's training graph. Under JAX
            eager steps are far slower; leave it off there.

    Returns:
        What the JSON sidecar ``<out>.json`` holds: the settings, the inference-mode source
        accuracy on training and validation images (and chance), seconds and date.

    Raises:
        ValueError: A bad argument. ConfigError: an unknown backbone or too small a size.
    """
    out = Path(out)
    _check_args(out, classes, images, epochs, batch_size)
    spec = get_backbone(backbone)
    spec.check_size(image_size)
    say = print if verbose else (lambda *a, **k: None)
    started = time.monotonic()
    keras.utils.set_random_seed(seed)

    val_images = max(classes, round(images * VAL_SHARE))
    x, y = make_source_arrays(classes, images, image_size, seed, stream=0)
    x_val, y_val = make_source_arrays(classes, val_images, image_size, seed, stream=1)
    say(
        f"Source task: {classes} classes, {images} training + {val_images} validation images "
        f"at {image_size} px ({time.monotonic() - started:.1f} s to draw)."
    )

    model, base, preprocess = build_source_model(spec, image_size, classes, seed)
    # Moving averages that follow the weights within ~10 steps, so validation means something.
    speed_up_moving_averages(base)
    steps = epochs * math.ceil(images / batch_size)
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, steps, warmup_target=learning_rate, warmup_steps=max(1, steps // 20)
    )
    model.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        run_eagerly=run_eagerly,
    )
    say(f"Training {spec.name} from random weights for {epochs} epoch(s) ({steps} steps)…")
    model.fit(
        x,
        y,
        batch_size=batch_size,
        epochs=epochs,
        shuffle=True,
        validation_data=(x_val, y_val) if verbose else None,
        verbose=2 if verbose else 0,
    )
    # The statistics a user's run keeps frozen: the plain average over training batches.
    recalibrate_batchnorm(
        base,
        preprocess,
        x,
        np.arange(len(x)),
        RECALIBRATION_BATCH,
        max_batches=RECALIBRATION_IMAGES // RECALIBRATION_BATCH,
        seed=seed,
    )
    train_accuracy = _accuracy(model, x, y, batch_size)
    val_accuracy = _accuracy(model, x_val, y_val, batch_size)

    out.parent.mkdir(parents=True, exist_ok=True)
    base.save_weights(out)
    meta = {
        "backbone": spec.name,
        "image_size": image_size,
        "weights": str(out),
        "classes": classes,
        "class_names": [c.name for c in source_classes(classes)],
        "images": images,
        "val_images": val_images,
        "epochs": epochs,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "seed": seed,
        "source_accuracy": {
            "train": round(train_accuracy, 4),
            "val": round(val_accuracy, 4),
            "chance": round(1 / classes, 4),
        },
        "seconds": round(time.monotonic() - started, 1),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "keras": keras.__version__,
        "backend": keras.backend.backend(),
    }
    sidecar_path(out).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    say(
        f"Source accuracy (inference mode): train {train_accuracy:.3f}, val {val_accuracy:.3f} "
        f"(chance {1 / classes:.3f}); {meta['seconds']} s. Saved {out} and "
        f"{sidecar_path(out).name}."
    )
    return meta


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="MobileNetV2")
    parser.add_argument("--size", type=int, default=96, help="source image size in pixels")
    parser.add_argument("--classes", type=int, default=24)
    parser.add_argument("--images", type=int, default=4800, help="training images in all")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=LEARNING_RATE, help="peak learning rate")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out", type=Path, help="default: weights/<backbone>-<size>.weights.h5 (lower case)"
    )
    parser.add_argument("--json", action="store_true", help="print the sidecar's JSON at the end")
    args = parser.parse_args(argv)
    out = args.out or Path("weights") / f"{args.backbone.lower()}-{args.size}{WEIGHTS_SUFFIX}"
    try:
        meta = pretrain(
            args.backbone,
            args.size,
            out,
            classes=args.classes,
            images=args.images,
            epochs=args.epochs,
            seed=args.seed,
            batch_size=args.batch_size,
            learning_rate=args.lr,
        )
        # What --weights PATH will do: raises WeightsError unless every layer finds its weights.
        get_backbone(args.backbone).build(args.size, out)
    except (ValueError, BabysitterError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(meta, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
