"""What the benchmarks share: generated JPEG folders and steady-state epoch timing."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np


def write_jpegs(root: Path, count: int, size: int, classes: int = 10) -> None:
    """A class-folder dataset of random-noise JPEGs (decoding cost like real photos)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(count):
        folder = root / f"class_{i % classes}"
        folder.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{i:05d}.jpg", quality=90)


def epoch_seconds(model, data, epochs: int, **fit_kwargs) -> float:
    """Median wall time of epochs 2..N of ``model.fit`` (the first traces and compiles)."""
    import keras

    times: list[float] = []

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.t)

    model.fit(data, epochs=epochs, verbose=0, callbacks=[Timer()], **fit_kwargs)
    return float(np.median(times[1:]))


def emit_report(report: dict, as_json: bool, json_out: str | None) -> None:
    """The report as JSON on stdout (``--json``) and into ``--json-out``'s file."""
    import json

    if as_json:
        print(json.dumps(report, indent=2, default=float))
    if json_out:
        Path(json_out).write_text(json.dumps(report, indent=2, default=float))
