"""Calibrate a trained classifier: fit its temperature on validation and write it into the model.

Runs once at the end of every ``train`` (so every search fine-tune too), after the scores and
findings, which describe the network as trained, and before the validation predictions and the
model are saved, which then hold the calibrated probabilities. The logits come from the model's
own layers (the frozen-or-fine-tuned backbone, then the head up to its ``logits`` layer), not
from the log of the saved probabilities, which a confident float32 softmax rounds to 0 and 1.
The arithmetic is ``training.babysit.calibration``'s.
"""

from __future__ import annotations

import keras
import numpy as np

from training.babysit.calibration import calibrate, held_out
from training.data.batches import ImageBatches
from training.fit.prepare import PreparedData
from training.model.classifier import Classifier
from training.model.layers import find_temperature


def calibrate_classifier(
    clf: Classifier, data: PreparedData, enabled: bool, batch_size: int
) -> dict:
    """Fit T on the validation split, set it in ``clf.model`` (1.0 when off or skipped) and
    return the summary's calibration fields; a test split, where there is one, is measured with
    the fitted T as images it never saw."""
    to_logits = logits_model(clf)
    logits, labels = split_logits(to_logits, data, "val", batch_size)
    result = calibrate(logits, labels, enabled=enabled)
    set_temperature(clf.model, result["temperature"])
    if result["calibration"]["status"] == "calibrated" and len(data.rows("test")):
        test = held_out(*split_logits(to_logits, data, "test", batch_size), result["temperature"])
        if test is not None:
            result["calibration"]["test"] = test
    return result


def logits_model(clf: Classifier) -> keras.Model:
    """uint8 images → the head's logits (before the temperature), in inference mode."""
    head_logits = keras.Model(clf.head.inputs, clf.head.get_layer("logits").output)
    return keras.Model(clf.features.inputs, head_logits(clf.features.outputs[0]))


def split_logits(
    to_logits: keras.Model, data: PreparedData, split: str, batch_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """The logits and labels of one split's images (empty arrays for an empty split)."""
    rows = data.rows(split)
    labels = data.cache.labels[rows]
    if len(rows) == 0:
        return np.zeros((0, len(data.class_names)), np.float32), labels
    batches = ImageBatches(data.cache.images, data.cache.labels, rows, batch_size)
    return batches.trim(to_logits.predict(batches, verbose=0)).astype(np.float32), labels


def set_temperature(model: keras.Model, temperature: float) -> None:
    """Write T into the model's ``Temperature`` layer (every model ``train`` builds has one)."""
    layer = find_temperature(model)
    if layer is None:
        raise ValueError(f"{model.name} has no temperature layer to calibrate.")
    layer.temperature.assign(float(temperature))


def temperature_of(model: keras.Model) -> float:
    """The model's T: 1.0 for a model saved before calibration existed."""
    layer = find_temperature(model)
    return 1.0 if layer is None else float(keras.ops.convert_to_numpy(layer.temperature))
