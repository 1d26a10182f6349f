"""The classifier: raw uint8 RGB in, class probabilities out, everything in between saved with it.

``Input(uint8) → augmentation → backbone preprocessing → backbone → head → ClassNames``. The
backbone's own ``preprocess_input`` lives inside the model, so a saved ``.keras`` file predicts
from plain pixels anywhere; wrong preprocessing is the most common silent failure of transfer
learning. The head is one sub-model shared by two graphs: the full classifier, and (for phase 1)
a features → probabilities model trained on cached backbone outputs, so training either trains
the same weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras

from training.model.backbones import BackboneSpec
from training.model.layers import ClassNames, ImagePreprocessing, RandomAffine, Temperature


@dataclass
class Classifier:
    """The saved model plus handles on its parts that the two training phases need."""

    model: keras.Model
    backbone: keras.Model
    head: keras.Model
    features: keras.Model
    preprocess: keras.layers.Layer
    spec: BackboneSpec
    class_names: list[str]
    image_size: int


def build_augmentation(seed: int) -> keras.layers.Layer:
    """Label-preserving, mild augmentation that runs on the accelerator and only in training.

    Flips, small rotations and zooms suit most photo datasets; it is inside the model, so it is
    saved with it and costs nothing at inference (identity when not training). One compiled
    affine warp rather than Keras' RandomRotation/RandomZoom, which cannot be jit-compiled.
    """
    return RandomAffine(flip=True, rotation=0.05, zoom=0.1, seed=seed, name="augmentation")


def build_head(
    feature_dim: int,
    num_classes: int,
    dropout: float,
    l2: float,
    head_units: int,
    seed: int,
) -> keras.Model:
    """Dropout → optional hidden Dense → logits → temperature → softmax; L2 on every kernel.

    The logits start small (N(0, 0.01²), CS231n's init) so the untrained head predicts about
    uniformly and the initial loss is ln(classes), which the sanity gate checks. The output
    layers compute in float32 even under a mixed-precision policy, so the softmax and
    the loss never run in bfloat16.
    """
    regularizer = keras.regularizers.L2(l2) if l2 > 0 else None
    layers: list[keras.layers.Layer] = [keras.Input((feature_dim,), name="features")]
    if dropout > 0:
        layers.append(keras.layers.Dropout(dropout, seed=seed, name="head_dropout"))
    if head_units > 0:
        layers.append(
            keras.layers.Dense(
                head_units, activation="relu", kernel_regularizer=regularizer, name="head_hidden"
            )
        )
    layers.append(
        keras.layers.Dense(
            num_classes,
            kernel_initializer=keras.initializers.RandomNormal(stddev=0.01, seed=seed),
            kernel_regularizer=regularizer,
            dtype="float32",
            name="logits",
        )
    )
    # T = 1 (the identity) while training; fitted on validation afterwards (calibration).
    layers.append(Temperature(dtype="float32", name="temperature"))
    layers.append(keras.layers.Activation("softmax", dtype="float32", name="probabilities"))
    return keras.Sequential(layers, name="head")


def build_classifier(
    spec: BackboneSpec,
    class_names: list[str],
    image_size: int,
    weights: str,
    *,
    dropout: float = 0.2,
    l2: float = 0.0,
    head_units: int = 0,
    augment: bool = True,
    seed: int = 0,
) -> Classifier:
    """Build backbone, head and the two graphs over them.

    With pretrained weights the backbone is called with ``training=False`` so its BatchNorm layers
    keep their ImageNet statistics in both phases (the keras-io fine-tuning rule). With random
    weights there are no statistics worth keeping: BatchNorm follows the training flag and learns.
    """
    backbone_weights = None if weights == "none" else weights
    backbone = spec.build(image_size, backbone_weights, include_top=False, pooling="avg")
    feature_dim = int(backbone.output.shape[-1])
    head = build_head(feature_dim, len(class_names), dropout, l2, head_units, seed)
    preprocess = ImagePreprocessing(spec.preprocess_mode, name="preprocess")
    bn_training = False if weights != "none" else None

    image = keras.Input((image_size, image_size, 3), dtype="uint8", name="image")
    x = keras.layers.Rescaling(1.0, name="to_float")(image)  # uint8 → compute dtype
    if augment:
        x = build_augmentation(seed)(x)
    x = preprocess(x)
    probabilities = head(backbone(x, training=bn_training))
    outputs = ClassNames(class_names, name="class_names")(probabilities)
    model = keras.Model(image, outputs, name=f"babysitter_{spec.name.lower()}")

    feature_input = keras.Input((image_size, image_size, 3), dtype="uint8", name="image")
    feature_output = backbone(preprocess(feature_input), training=False)
    features = keras.Model(feature_input, feature_output, name="features")
    return Classifier(
        model, backbone, head, features, preprocess, spec, list(class_names), image_size
    )
