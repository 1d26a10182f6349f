"""Epoch time of one model fed three ways, measured side by side in one run (TensorFlow backend).

  memory     numpy arrays already decoded in RAM (the upper bound for any input pipeline)
  cache      Babysitter's uint8 memmap cache through ``ImageBatches`` (a keras PyDataset)
  directory  ``keras.utils.image_dataset_from_directory`` on the JPEG folder (decodes each epoch)

Prints median seconds of epochs 2..N and the speed of each relative to ``memory``.

    KERAS_BACKEND=tensorflow python -m bench.input_pipeline --images 1000 --size 96 --epochs 4
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import epoch_seconds, write_jpegs


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--backbone", default="MobileNetV2")
    args = parser.parse_args()

    import keras

    from training.data.audit import audit_dataset
    from training.data.batches import ImageBatches
    from training.data.cache import load_or_build_cache
    from training.data.scan import scan_dataset
    from training.model.backbones import get_backbone

    work = Path(tempfile.mkdtemp(prefix="bench-input-"))
    data = work / "jpegs"
    write_jpegs(data, args.images, 256)  # larger than the model size: resizing is part of it
    report = audit_dataset(scan_dataset(data))
    started = time.perf_counter()
    cache = load_or_build_cache(
        report.readable(), report.classes, args.size, work / "cache", progress=False
    )
    build_seconds = time.perf_counter() - started

    def model():
        base = get_backbone(args.backbone).build(args.size, None)
        inputs = keras.Input((args.size, args.size, 3))
        out = keras.layers.Dense(len(cache.class_names), activation="softmax")(
            base(keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs))
        )
        m = keras.Model(inputs, out)
        m.compile("adam", "sparse_categorical_crossentropy")
        return m

    x = np.array(cache.images)
    y = cache.labels
    results = {
        "memory": epoch_seconds(model(), x, args.epochs, y=y, batch_size=args.batch, shuffle=True),
        "cache": epoch_seconds(
            model(), ImageBatches(cache.images, y, batch_size=args.batch, shuffle=True), args.epochs
        ),
        "directory": epoch_seconds(
            model(),
            keras.utils.image_dataset_from_directory(
                data, image_size=(args.size, args.size), batch_size=args.batch, verbose=False
            ),
            args.epochs,
        ),
    }
    print(
        f"backend={keras.backend.backend()} backbone={args.backbone} size={args.size} "
        f"images={args.images} batch={args.batch}; cache built once in {build_seconds:.1f} s"
    )
    for name, seconds in results.items():
        print(
            f"{name:>10}: {seconds:6.2f} s/epoch   speed vs memory "
            f"{results['memory'] / seconds:.3f}"
        )


if __name__ == "__main__":
    main()
