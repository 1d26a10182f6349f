"""Serializable layers that travel inside a saved model, so a ``.keras`` file stands alone.

Wrong preprocessing is the most common silent failure of transfer learning: a model exported
without its backbone's ``preprocess_input`` predicts worse outside the tool than inside it. So
the preprocessing is a layer of the model, and so are the class names: loading the file with
``keras.saving.load_model(path, safe_mode=True)`` gives a model that takes raw RGB pixels and
knows its labels. Only ``keras.ops`` is used, so it runs on every backend.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from training.errors import ConfigError

PREPROCESS_MODES = ("caffe", "tf", "torch", "none")
# The ImageNet statistics behind keras.applications.imagenet_utils.preprocess_input.
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
TORCH_MEAN_RGB = (0.485, 0.456, 0.406)
TORCH_STD_RGB = (0.229, 0.224, 0.225)


@keras.saving.register_keras_serializable(package="babysitter")
class ImagePreprocessing(keras.layers.Layer):
    """Turn RGB pixels in [0, 255] (uint8 or float) into what a pretrained backbone expects.

    Modes match ``keras.applications.imagenet_utils.preprocess_input``:

    - ``"caffe"`` (VGG, ResNet v1): RGB→BGR, then subtract the ImageNet BGR mean.
    - ``"tf"`` (Inception, Xception, MobileNet v1/v2, ResNet v2, NASNet): ``x / 127.5 - 1``.
    - ``"torch"`` (DenseNet): ``x / 255``, subtract the ImageNet mean, divide by its std.
    - ``"none"`` (EfficientNet, EfficientNetV2, ConvNeXt, MobileNetV3): the backbone rescales
      inside itself, so only the cast to float happens here.

    The arithmetic runs in float32 and the result is cast to the layer's compute dtype, so under
    a ``mixed_bfloat16`` policy the only rounding is that of the output. Channels are last.
    """

    def __init__(self, mode: str, **kwargs: Any) -> None:
        # autocast=False: float inputs reach call() unrounded; the cast happens after the math.
        super().__init__(autocast=False, **kwargs)
        if mode not in PREPROCESS_MODES:
            raise ConfigError(
                f"Expected preprocessing mode one of {', '.join(PREPROCESS_MODES)}. "
                f"Received: mode={mode!r}"
            )
        self.mode = mode

    def call(self, inputs: Any) -> Any:
        x = ops.cast(inputs, "float32")
        if self.mode == "caffe":
            x = ops.flip(x, axis=-1) - ops.convert_to_tensor(CAFFE_MEAN_BGR, "float32")
        elif self.mode == "tf":
            x = x / 127.5 - 1.0
        elif self.mode == "torch":
            mean = ops.convert_to_tensor(TORCH_MEAN_RGB, "float32")
            std = ops.convert_to_tensor(TORCH_STD_RGB, "float32")
            x = (x / 255.0 - mean) / std
        return ops.cast(x, self.compute_dtype)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return tuple(input_shape)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "mode": self.mode}


@keras.saving.register_keras_serializable(package="babysitter")
class ClassNames(keras.layers.Layer):
    """Identity on the model's output whose config carries the class names, in output order.

    A saved ``.keras`` file then holds its own labels (``model.get_layer("class_names")
    .class_names``); no side file can get lost or out of step with the output units. A single
    sigmoid unit may carry two names (negative class first).
    """

    def __init__(self, names: list[str], **kwargs: Any) -> None:
        kwargs.setdefault("name", "class_names")
        # autocast=False: an identity must not round float32 probabilities to a mixed policy.
        super().__init__(autocast=False, **kwargs)
        names = list(names)
        if not names or not all(isinstance(n, str) and n for n in names):
            raise ConfigError(f"Expected a list of non-empty class names. Received: {names!r}")
        if len(set(names)) != len(names):
            raise ConfigError(f"Expected unique class names. Received: {names!r}")
        self.class_names = names

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        units = input_shape[-1]
        fits = units is None or units == len(self.class_names)
        if not (fits or (units == 1 and len(self.class_names) == 2)):
            raise ConfigError(
                f"The model has {units} outputs but {len(self.class_names)} class names. "
                f"Received: {self.class_names!r}"
            )
        super().build(input_shape)

    def call(self, inputs: Any) -> Any:
        return inputs

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "names": list(self.class_names)}


@keras.saving.register_keras_serializable(package="babysitter")
class Temperature(keras.layers.Layer):
    """Logits divided by one scalar T before the softmax: calibration that travels with the file.

    T is a non-trainable weight, 1.0 (the identity) while training; ``train`` fits it on the
    validation images afterwards (``training.fit.calibrate``), so every reader of the saved model
    (``predict``, the Python API, the exports, the app) gets the calibrated probabilities. The
    argmax, hence the accuracy, does not change. A model saved before this layer has none: T = 1.
    """

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        self.temperature = self.add_weight(
            shape=(), initializer="ones", trainable=False, name="temperature"
        )
        super().build(input_shape)

    def call(self, logits: Any) -> Any:
        return logits / ops.cast(self.temperature, logits.dtype)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return input_shape


def find_temperature(model: keras.Model) -> Temperature | None:
    """The model's ``Temperature`` layer, searched through nested models (the head); None in a
    model saved before calibration existed."""
    for layer in model.layers:
        if isinstance(layer, Temperature):
            return layer
        if isinstance(layer, keras.Model) and (found := find_temperature(layer)) is not None:
            return found
    return None


@keras.saving.register_keras_serializable(package="babysitter")
class RandomAffine(keras.layers.Layer):
    """Random horizontal flip, rotation and zoom as one affine warp, in training only.

    Keras' ``RandomRotation`` and ``RandomZoom`` declare ``supports_jit = False``, which makes
    the whole model fall back to op-by-op execution: on JAX that turned a 5 ms training step
    into minutes. One ``keras.ops.image.affine_transform`` per batch does the same work and
    compiles. ``rotation`` is a fraction of a full turn and ``zoom`` a relative scale change, as
    in the Keras layers.
    """

    def __init__(
        self,
        flip: bool = True,
        rotation: float = 0.05,
        zoom: float = 0.1,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.flip = bool(flip)
        self.rotation = float(rotation)
        self.zoom = float(zoom)
        self.seed = seed
        self.generator = keras.random.SeedGenerator(seed)
        # TensorFlow's XLA bridge lacks the projective-transform kernel: there, no XLA.
        self.supports_jit = keras.backend.backend() != "tensorflow"

    def call(self, images: Any, training: bool | None = None) -> Any:
        if not training:
            return images
        dtype = images.dtype
        x = ops.cast(images, "float32")
        batch = ops.shape(x)[0]
        height, width = ops.cast(ops.shape(x)[1], "float32"), ops.cast(ops.shape(x)[2], "float32")
        angle = (
            keras.random.uniform((batch,), -self.rotation, self.rotation, seed=self.generator)
            * 2.0
            * 3.141592653589793
        )
        scale = 1.0 + keras.random.uniform((batch,), -self.zoom, self.zoom, seed=self.generator)
        mirror = ops.ones((batch,))
        if self.flip:
            coin = keras.random.uniform((batch,), 0.0, 1.0, seed=self.generator)
            mirror = ops.where(coin < 0.5, -1.0, 1.0)
        # Output pixel p samples input c + R·S·F·(p - c), c the image centre.
        cos, sin = ops.cos(angle) * scale, ops.sin(angle) * scale
        a0, a1, b0, b1 = cos * mirror, -sin, sin * mirror, cos
        cx, cy = (width - 1.0) / 2.0, (height - 1.0) / 2.0
        a2 = cx - a0 * cx - a1 * cy
        b2 = cy - b0 * cx - b1 * cy
        zeros = ops.zeros((batch,))
        transform = ops.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)
        warped = ops.image.affine_transform(
            x, transform, interpolation="bilinear", fill_mode="reflect"
        )
        return ops.cast(warped, dtype)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "flip": self.flip,
            "rotation": self.rotation,
            "zoom": self.zoom,
            "seed": self.seed,
        }
