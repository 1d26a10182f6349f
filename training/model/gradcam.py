"""Grad-CAM (Selvaraju et al. 2017) on the backbone's last convolutional block.

The last convolutional block is where a CNN still knows *where* (its output is a spatial map)
and already knows *what* (everything after it is pooling and the head), so the gradient of the
class score with respect to that map says which of its cells made the prediction. The
classifier is cut there into pixels → maps and maps → probabilities: a Babysitter model is a
chain ``to_float → augmentation → preprocess → backbone → head → class_names`` around a nested
backbone model, which Keras can slice at any layer whose output alone determines the rest.

A cut is used only when it reproduces the model's own probabilities on the images explained;
where no cut does (no convolutional layer, a 1×1 map, a graph that is not a chain),
:class:`NoGradCam` says why and the caller falls back to occlusion.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
from keras import ops

from training.model.blocks import _leaf_layers
from training.model.gradients import gradient

CONV_LAYERS = (
    keras.layers.Conv2D,
    keras.layers.DepthwiseConv2D,
    keras.layers.SeparableConv2D,
    keras.layers.Conv2DTranspose,
)
NOT_A_MAP = (keras.layers.MaxPooling2D, keras.layers.AveragePooling2D, keras.layers.ZeroPadding2D)
"""Layers whose output is not a block's map: a pool (its input is), a padding (a border)."""
BATCH = 32
MAX_TRIES = 8
"""Candidate layers tried, from the last one back, before giving up on a cut."""
AGREEMENT = {"float32": 1e-3, "16-bit": 3e-2}
"""Largest difference in probability between the cut model and the model itself: a model saved
under mixed precision computes in bfloat16, where fused and unfused ops round differently."""
LOG_FLOOR = 1e-30
NOT_A_CHAIN = "its layers are not one chain around the backbone"


class NoGradCam(Exception):
    """Why Grad-CAM cannot explain this model (the message completes "Grad-CAM is not
    possible: …")."""


@dataclass(frozen=True)
class ConvCut:
    """The classifier cut after its last convolutional block.

    ``seen`` maps uint8 images to the block's output and the model's own probabilities (one
    compiled forward pass); :meth:`probabilities` computes the latter from the former, through
    the rest of the backbone and the outer layers after it (``after``).
    """

    layer: str
    seen: keras.Model
    from_maps: keras.Model
    after: list[keras.layers.Layer]

    def look(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The block's output (N, h, w, channels) and the model's probabilities, float32."""
        maps, probabilities = _in_batches(self.seen.predict_on_batch, images)
        return maps.astype("float32"), probabilities.astype("float32")

    def recomputed(self, maps: np.ndarray) -> np.ndarray:
        """:meth:`probabilities` as float32 NumPy, for a check against :meth:`look`'s."""
        found = _in_batches(lambda part: ops.convert_to_numpy(self.probabilities(part)), maps)
        return found.astype("float32")

    def probabilities(self, maps: Any) -> Any:
        """The model's output computed from the block's output (a tensor, differentiable)."""
        return self._through(maps, self.after)

    def class_scores(self, maps: Any) -> Any:
        """What Grad-CAM differentiates, per class: the logits the final softmax reads (divided
        by a temperature, if any: a scale that normalising the map removes). Without a softmax
        layer to stop at, ``log p - mean(log p)``, which equals the logits minus their mean."""
        softmax = [i for i, layer in enumerate(self.after) if _is_softmax(layer)]
        if softmax:
            return ops.cast(self._through(maps, self.after[: softmax[-1]]), "float32")
        log_p = ops.log(ops.clip(ops.cast(self.probabilities(maps), "float32"), LOG_FLOOR, 1.0))
        return log_p - ops.mean(log_p, axis=-1, keepdims=True)

    def _through(self, maps: Any, layers: list[keras.layers.Layer]) -> Any:
        x = self.from_maps(maps, training=False)
        for layer in layers:
            x = layer(x, training=False)
        return x


def find_cut(model: keras.Model, images: np.ndarray) -> tuple[ConvCut, np.ndarray, np.ndarray]:
    """The cut at the last convolutional block whose map is larger than 1×1 and that gives the
    model's own probabilities for ``images`` back, with the block's output and those
    probabilities (see :meth:`ConvCut.look`).

    Raises:
        NoGradCam: No such cut; the message says why.
    """
    tried = []
    half = any(leaf.compute_dtype in ("bfloat16", "float16") for leaf in _leaf_layers(model))
    tolerance = AGREEMENT["16-bit" if half else "float32"]
    for cut in _cuts(model):
        tried.append(cut.layer)
        try:
            maps, probabilities = cut.look(images)
            again = cut.recomputed(maps)
        except Exception:  # Keras raises many types for a layer fed out of place
            again = None
        if again is not None and np.max(np.abs(again - probabilities)) <= tolerance:
            return cut, maps, probabilities
        if len(tried) >= MAX_TRIES:
            break
    if tried:
        raise NoGradCam(
            f"the model cut after {', '.join(tried)} does not give its own probabilities back "
            f"({NOT_A_CHAIN})"
        )
    backbone = _split(model)[0]
    if not any(_convolves(leaf) for leaf in _leaf_layers(backbone)):
        raise NoGradCam("the model has no convolutional layer, so no map of where it looked")
    if not _candidates(backbone):
        raise NoGradCam(
            f"every convolutional map of the backbone is 1×1 at {model.input_shape[1]} px, "
            "which cannot say where (a larger --image-size gives a larger map)"
        )
    raise NoGradCam("no layer after the last convolutional block determines the output alone")


def gradcam(cut: ConvCut, maps: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Grad-CAM maps (N, h, w), not normalised, from the block's output ``maps`` (from
    :meth:`ConvCut.look`) for ``classes`` (one index per image).

    The class score is the class's logit (:meth:`ConvCut.class_scores`), as in the paper: the
    probability saturates, and its log credits a class with the evidence against the others
    (measured on white crosses, squares and plain noise: 7% of a cross's heat in its quadrant
    with the log-probability, 92% with the logit).
    """
    return _in_batches(lambda m, c: _gradcam_batch(cut, m, c), maps, np.asarray(classes, "int32"))


def _gradcam_batch(cut: ConvCut, maps: np.ndarray, classes: np.ndarray) -> np.ndarray:
    def score(block_output: Any) -> Any:
        scores = cut.class_scores(block_output)
        return ops.sum(scores * ops.one_hot(classes, ops.shape(scores)[-1], dtype="float32"))

    grads = gradient(score, maps)
    weights = grads.mean(axis=(1, 2))  # one weight per channel: its average gradient
    return np.maximum(np.einsum("nhwc,nc->nhw", maps, weights), 0.0)


def _in_batches(function: Callable[..., Any], *arrays: np.ndarray) -> Any:
    """``function`` over batches of the arrays' rows, its results (an array, or a list of
    arrays) joined again. The last batch is padded with copies of the last row, so every batch
    has one shape and what the backend traced or compiled for it is used again."""
    count = len(arrays[0])
    batch = min(BATCH, count)
    pad = -count % batch
    padded = [np.concatenate([a, a[-1:].repeat(pad, axis=0)]) for a in arrays]
    parts = [function(*(a[i : i + batch] for a in padded)) for i in range(0, count + pad, batch)]
    if isinstance(parts[0], list | tuple):
        return [
            np.concatenate([np.asarray(p[k]) for p in parts])[:count] for k in range(len(parts[0]))
        ]
    return np.concatenate([np.asarray(p) for p in parts])[:count]


def _cuts(model: keras.Model) -> Iterator[ConvCut]:
    """Every cut worth trying, the last candidate layer first."""
    backbone, before, after = _split(model)
    after = _flattened(after)
    image = keras.Input(model.input_shape[1:], dtype=model.inputs[0].dtype)
    pixels = image
    try:
        for outer in before:
            pixels = outer(pixels)
    except Exception as error:  # as in find_cut: many types
        raise NoGradCam(NOT_A_CHAIN) from error
    for layer in reversed(_candidates(backbone)):
        try:
            to_maps = keras.Model(backbone.inputs, layer.output)
            from_maps = keras.Model(layer.output, backbone.outputs)
        except ValueError:  # the rest needs more than this layer's output (a skip connection)
            continue
        seen = keras.Model(image, [to_maps(pixels), model(image)])
        yield ConvCut(layer.name, seen, from_maps, after)


def _split(model: keras.Model) -> tuple[keras.Model, list, list]:
    """The backbone (the last nested model that convolves, else the model itself) and the
    outer layers before and after it."""
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    nested = [i for i, layer in enumerate(layers) if _is_backbone(layer)]
    if not nested:
        return model, [], []
    i = nested[-1]
    return layers[i], layers[:i], layers[i + 1 :]


def _flattened(layers: list[keras.layers.Layer]) -> list[keras.layers.Layer]:
    """Layers with each nested Sequential model (the head) replaced by its own layers."""
    flat = []
    for layer in layers:
        if isinstance(layer, keras.Sequential):
            flat.extend(_flattened(layer.layers))
        elif not isinstance(layer, keras.layers.InputLayer):
            flat.append(layer)
    return flat


def _is_softmax(layer: keras.layers.Layer) -> bool:
    if isinstance(layer, keras.layers.Softmax):
        return True
    activation = getattr(layer, "activation", None)
    return isinstance(layer, keras.layers.Activation) and activation in (
        keras.activations.softmax,
        "softmax",
    )


def _is_backbone(layer: keras.layers.Layer) -> bool:
    return isinstance(layer, keras.Model) and any(_convolves(leaf) for leaf in _leaf_layers(layer))


def _candidates(backbone: keras.Model) -> list[keras.Operation]:
    """Operations at or after the first convolution whose output is a map larger than 1×1: the
    last is the last block's output, or, where that is 1×1 (a small image), the last map
    before it that still says where. Operations, not only layers: a residual block's output is
    often a plain ``x + y`` (ConvNeXt), which is no layer."""
    found, seen_conv = [], False
    for operation in getattr(backbone, "operations", backbone.layers):
        if isinstance(operation, keras.layers.Layer):
            seen_conv = seen_conv or any(_convolves(leaf) for leaf in _leaf_layers(operation))
        if seen_conv and not isinstance(operation, NOT_A_MAP) and _map_size(operation) > 1:
            found.append(operation)
    return found


def _map_size(operation: keras.Operation) -> int:
    """h × w of an operation's single rank-4 output (0 when it has none or it is not known)."""
    try:
        shape = operation.output.shape
    except (AttributeError, ValueError):  # several outputs, or a layer used twice
        return 0
    if len(shape) != 4 or shape[1] is None or shape[2] is None:
        return 0
    return int(shape[1]) * int(shape[2])


def _convolves(layer: keras.layers.Layer) -> bool:
    return isinstance(layer, CONV_LAYERS)
