"""Export a run's model: ``.keras`` anywhere, SavedModel and TFLite (LiteRT) on TensorFlow.

SavedModel and LiteRT go through Keras' own ``model.export``, which needs the TensorFlow backend.
The exported graph keeps the uint8 input and the preprocessing, like the ``.keras`` file.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import keras

from training.errors import BackendError, ConfigError
from training.predict import load_model_file, resolve_model_path
from training.runs import RunStore

FORMATS = {"keras": "model.keras", "savedmodel": "saved_model", "tflite": "model.tflite"}


def export_model(
    model_or_run: str, fmt: str, output: Path | None = None, store: RunStore | None = None
) -> Path:
    """Write the model in ``fmt`` and return where; default next to the run's model."""
    if fmt not in FORMATS:
        raise ConfigError(f"Expected --format to be one of {list(FORMATS)}. Received: {fmt!r}.")
    if fmt != "keras" and keras.backend.backend() != "tensorflow":
        raise BackendError(
            f"Export to {fmt} needs the TensorFlow backend; this process runs Keras on "
            f"{keras.backend.backend()}. Run it as: KERAS_BACKEND=tensorflow python -m training "
            f"export {model_or_run} --format {fmt}"
        )
    source = resolve_model_path(model_or_run, store)
    target = Path(output) if output else source.parent / "export" / FORMATS[fmt]
    target.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "keras":
        load_model_file(source)  # refuse to copy a file that would not load
        if target.resolve() != source.resolve():
            shutil.copyfile(source, target)
        return target
    model = load_model_file(source)
    if target.exists():
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    model.export(
        str(target), format="tf_saved_model" if fmt == "savedmodel" else "litert", verbose=False
    )
    return target
