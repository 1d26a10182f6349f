"""Phase-2 training throughput of ``training`` vs plain ``model.fit`` on in-memory arrays.

Same machine, same run, same backbone and image size. Writes ~N generated JPEGs, then measures:
  plain   keras.applications backbone + Dense, all layers trainable, model.fit(numpy arrays)
  ours    ``training.fit.train`` phase 2 (unfreeze all, BatchNorm frozen as for pretrained
          weights), fed from the uint8 memmap cache through ``ImageBatches``
for float32 and mixed_bfloat16, and prints img/s and the ratio ours/plain. The first epoch
(tracing, compiling, decoding) is excluded: steady-state epochs only.

    KERAS_BACKEND=jax python bench/phase2_throughput.py --images 2048 --size 224 --epochs 3
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import epoch_seconds, write_jpegs


def plain_fit(backbone: str, x: np.ndarray, y: np.ndarray, batch: int, epochs: int) -> float:
    """img/s of steady-state epochs for the textbook ``model.fit`` on arrays."""
    import keras

    from training.backbones import get_backbone

    spec = get_backbone(backbone)
    base = spec.build(x.shape[1], None)
    inputs = keras.Input(x.shape[1:], dtype="uint8")
    h = keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)
    out = keras.layers.Dense(int(y.max()) + 1, activation="softmax", dtype="float32")(base(h))
    model = keras.Model(inputs, out)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return len(x) / epoch_seconds(model, x, epochs, y=y, batch_size=batch)


def ours(
    data: Path,
    backbone: str,
    size: int,
    batch: int,
    epochs: int,
    precision: str,
    weights_file: Path,
    augment: bool = False,
) -> float:
    from training.config import TrainConfig
    from training.fit import train
    from training.runs import RunStore

    config = TrainConfig(
        data=str(data),
        backbone=backbone,
        weights=str(weights_file),
        image_size=size,
        batch_size=batch,
        epochs_head=0,
        epochs_finetune=epochs,
        unfreeze="all",
        val_split=0.0,
        augment=augment,
        precision=precision,
    )
    result = train(config, verbose=0, echo=lambda m: None)
    epochs_done = [e for e in RunStore().epochs(result.run_id) if e["phase"] == "finetune"]
    seconds = [e["seconds"] for e in epochs_done][1:]
    return result.summary["splits"]["train"] / float(np.median(seconds))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--backbone", default="ResNet50")
    parser.add_argument("--precisions", default="float32,mixed_bfloat16")
    args = parser.parse_args()

    import keras

    from training.backbones import get_backbone
    from training.data.images import load_rgb

    work = Path(tempfile.mkdtemp(prefix="bench-phase2-"))
    os.environ["BABYSITTER_HOME"] = str(work / "home")
    data = work / "jpegs"
    write_jpegs(data, args.images, args.size)
    files = sorted(data.rglob("*.jpg"))
    x = np.stack([load_rgb(f, args.size) for f in files])
    y = np.array([int(f.parent.name.split("_")[1]) for f in files], dtype=np.int32)
    weights_file = work / "backbone.weights.h5"
    get_backbone(args.backbone).build(args.size, None).save_weights(weights_file)

    rows = []
    for precision in args.precisions.split(","):
        keras.config.set_dtype_policy(precision)
        plain = plain_fit(args.backbone, x, y, args.batch, args.epochs)
        mine = ours(
            data, args.backbone, args.size, args.batch, args.epochs, precision, weights_file
        )
        augmented = ours(
            data, args.backbone, args.size, args.batch, args.epochs, precision, weights_file, True
        )
        keras.config.set_dtype_policy("float32")
        rows.append(
            {
                "precision": precision,
                "plain_img_s": round(plain),
                "training_img_s": round(mine),
                "ratio": round(mine / plain, 3),
                "augmented_img_s": round(augmented),
                "augmented_ratio": round(augmented / plain, 3),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    print(
        f"backend={keras.backend.backend()} backbone={args.backbone} size={args.size} "
        f"batch={args.batch} images={args.images}"
    )
    for row in rows:
        print(
            f"{row['precision']:>15}: plain {row['plain_img_s']:>6} img/s   training "
            f"{row['training_img_s']:>6} img/s   ratio {row['ratio']:.3f}   with augmentation "
            f"{row['augmented_img_s']:>6} img/s   ratio {row['augmented_ratio']:.3f}"
        )


if __name__ == "__main__":
    main()
