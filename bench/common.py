"""What the benchmarks share: generated JPEG folders, steady-state epoch timing, a scratch
folder and the report's output. Standard library only at import time (NumPy and Keras are
imported where used), so a bench that times its own process start can import it first."""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path


def write_jpegs(root: Path, count: int, size: int, classes: int = 10) -> None:
    """A class-folder dataset of random-noise JPEGs (decoding cost like real photos)."""
    import numpy as np
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
    import numpy as np

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
    if as_json:
        print(json.dumps(report, indent=2, default=float))
    if json_out:
        Path(json_out).write_text(json.dumps(report, indent=2, default=float))


@contextlib.contextmanager
def work_folder(keep: str | None, prefix: str) -> Iterator[Path]:
    """The bench's scratch folder: ``keep`` (``--workdir``, left in place) or a fresh temporary
    folder, removed at the end whatever happens."""
    work = Path(keep or tempfile.mkdtemp(prefix=prefix)).resolve()
    work.mkdir(parents=True, exist_ok=True)
    try:
        yield work
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
