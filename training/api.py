"""Using a trained model from your own Python code: ``from training import load_model``.

A saved ``.keras`` file needs Babysitter's layers registered before Keras can read it, and it
must be read safely (it is a file someone may have sent you). ``load_model`` does both, with the
same checks as ``python -m training predict``, and returns the model with what it needs around
it: the class names and the image size it expects. Images go in raw (paths, PIL images or uint8
arrays of any size): the model resizes them as training did and carries its own preprocessing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
from PIL import Image

from training.data.images import load_rgb
from training.explain import Explanation, explain_arrays
from training.predict import (
    check_top_k,
    class_names_of,
    image_size_of,
    load_model_file,
    predict_arrays,
    resolve_model_path,
)


@dataclass(frozen=True)
class TrainedModel:
    """A loaded Babysitter model: the Keras model, its classes and its input size."""

    model: keras.Model
    class_names: list[str]
    image_size: int

    def probabilities(self, images: list[Any], tta: bool = False) -> np.ndarray:
        """One row of class probabilities per image (columns in ``class_names`` order);
        ``tta``: averaged over the image and its mirror (and the rotations and zoom the
        training augmentation used; see ``training.tta``)."""
        pixels = np.stack([self._pixels(i) for i in images])
        return predict_arrays(self.model, pixels, tta=tta)

    def predict(
        self, images: list[Any], top_k: int = 3, tta: bool = False
    ) -> list[list[tuple[str, float]]]:
        """The ``top_k`` most likely ``(class, probability)`` pairs per image, likeliest first."""
        check_top_k(top_k)
        rows = self.probabilities(images, tta=tta)
        best = np.argsort(-rows, axis=1)[:, :top_k]
        return [
            [(self.class_names[j], float(row[j])) for j in top]
            for row, top in zip(rows, best, strict=True)
        ]

    def explain(self, images: list[Any]) -> list[Explanation]:
        """Where the model looked, per image: a heatmap (size × size, in [0, 1]) for its
        predicted class, with the class, its probability and the method (Grad-CAM, or
        occlusion where Grad-CAM is not possible); see ``training.explain``."""
        return explain_arrays(self.model, np.stack([self._pixels(i) for i in images]))

    def _pixels(self, image: Any) -> np.ndarray:
        """Any accepted image as uint8 RGB at the model's size, resized the way training was."""
        if not isinstance(image, str | Path | Image.Image):
            array = np.asarray(image)
            if array.ndim != 3 or array.shape[-1] != 3:
                raise ValueError(
                    "Expected an image path, a PIL image or an (height, width, 3) array. "
                    f"Received: an array of shape {array.shape}"
                )
            image = Image.fromarray(array.astype(np.uint8))
        return load_rgb(image, self.image_size)  # a PIL image goes through to_rgb, like a file


def load_model(model_or_run: str | Path) -> TrainedModel:
    """A ``.keras`` file saved by Babysitter (or a run id in ``$BABYSITTER_HOME``), loaded safely.

    Raises:
        ModelFileError: the file is not a safe, loadable Babysitter model (the message says why).
        RunNotFoundError: no such file, and no run with that id.
    """
    model = load_model_file(resolve_model_path(str(model_or_run)))
    return TrainedModel(model, class_names_of(model), image_size_of(model))
