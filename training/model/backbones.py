"""The one registry of pretrained backbones: name → constructor, preprocessing, sizes, blocks.

Like timm's ``@register_model``: each family is one decorated entry below, and everything else
(CLI, tuner, app) reads :func:`list_backbones` / :func:`get_backbone` instead of a hard-coded
list, so a new family is one function here. The mechanism (``BackboneSpec``, the lookups, the
weights rules) is in :mod:`training.model.registry`.
"""

from __future__ import annotations

from training.model.registry import (
    META_PATH,
    WEIGHT_SUFFIXES,
    BackboneSpec,
    Registry,
    check_weights,
    format_backbones,
)

__all__ = [
    "KERAS_WEIGHTS_URL",
    "META_PATH",
    "REGISTRY",
    "WEIGHT_SUFFIXES",
    "BackboneSpec",
    "check_weights",
    "format_backbones",
    "get_backbone",
    "list_backbones",
    "register_family",
]

# Where keras.applications downloads its ImageNet weights from: one folder per family (or per
# model) under this base. Keras keeps it in each application's private module constants, so it is
# spelled here; a BackboneSpec shows it in messages that say where to fetch a weights file by hand.
KERAS_WEIGHTS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/"

REGISTRY = Registry(KERAS_WEIGHTS_URL)
"""Every backbone, filled by the entries below as this module is imported."""
register_family = REGISTRY.family
get_backbone = REGISTRY.get
list_backbones = REGISTRY.all


# --- the registry ------------------------------------------------------------------------------


@register_family(
    "vgg",
    preprocess_mode="caffe",
    min_size=32,
    block_pattern=r"^(block\d+)_pool$",
    weights_url=KERAS_WEIGHTS_URL + "{model}/",
)
def _vgg() -> dict[str, int]:
    """VGG (Simonyan & Zisserman 2014): five conv stages, each closed by a 2x2 max pool."""
    return {"VGG16": 224, "VGG19": 224}


_RESNET_BLOCKS = r"^(pool1)_pool$|^(conv\d_block\d+)_out$"


@register_family(
    "resnet",
    preprocess_mode="caffe",
    min_size=32,
    block_pattern=_RESNET_BLOCKS,
)
def _resnet() -> dict[str, int]:
    """ResNet v1 (He et al. 2015): stem, then one block per bottleneck unit (``convK_blockN``)."""
    return {"ResNet50": 224, "ResNet101": 224, "ResNet152": 224}


@register_family(
    "resnet_v2",
    preprocess_mode="tf",
    min_size=32,
    block_pattern=_RESNET_BLOCKS,
    weights_url=KERAS_WEIGHTS_URL + "resnet/",
)
def _resnet_v2() -> dict[str, int]:
    """ResNet v2 (pre-activation): same units as v1; ``post_bn`` joins the last block."""
    return {"ResNet50V2": 224, "ResNet101V2": 224, "ResNet152V2": 224}


@register_family(
    "inception_v3",
    preprocess_mode="tf",
    min_size=75,
    block_pattern=r"^(mixed\d+)$",
)
def _inception_v3() -> dict[str, int]:
    """Inception v3: one block per Inception module ``mixed0..10`` (stem joins ``mixed0``)."""
    return {"InceptionV3": 299}


@register_family(
    "inception_resnet_v2",
    preprocess_mode="tf",
    min_size=75,
    block_pattern=r"^(mixed_5b|mixed_6a|mixed_7a)$|^(block(?:35|17|8)_\d+|conv_7b)_ac$",
)
def _inception_resnet_v2() -> dict[str, int]:
    """Inception-ResNet v2: the stem + mixed_5b, each residual Inception block, the reductions."""
    return {"InceptionResNetV2": 299}


@register_family(
    "xception",
    preprocess_mode="tf",
    min_size=71,
    block_pattern=r"^(block\d+)_",
    pattern_marks="first",
)
def _xception() -> dict[str, int]:
    """Xception: 14 blocks; their residual ``add`` layers are auto-named, so blocks are matched
    by their first layer (``blockN_…``) and the unnamed shortcut layers stay with their block."""
    return {"Xception": 299}


@register_family(
    "densenet",
    preprocess_mode="torch",
    min_size=32,
    block_pattern=r"^(pool1)$|^(conv\d_block\d+)_concat$|^(pool\d)_pool$",
)
def _densenet() -> dict[str, int]:
    """DenseNet: stem, one block per dense layer (``convK_blockN``), one per transition."""
    return {"DenseNet121": 224, "DenseNet169": 224, "DenseNet201": 224}


@register_family(
    "mobilenet",
    preprocess_mode="tf",
    min_size=32,
    block_pattern=r"^(conv1)_relu$|^(conv_pw_\d+)_relu$",
)
def _mobilenet() -> dict[str, int]:
    """MobileNet v1: the stem conv, then 13 depthwise-separable blocks."""
    return {"MobileNet": 224}


@register_family(
    "mobilenet_v2",
    preprocess_mode="tf",
    min_size=32,
    block_pattern=r"^(Conv1)_relu$|^(expanded_conv|block_\d+)_(?:project_BN|add)$",
)
def _mobilenet_v2() -> dict[str, int]:
    """MobileNet v2: the stem, then 17 inverted-residual blocks (``add`` counted once)."""
    return {"MobileNetV2": 224}


@register_family(
    "mobilenet_v3",
    preprocess_mode="none",
    min_size=32,
    block_pattern=r"^(conv)_bn$|^(expanded_conv(?:_\d+)?)_(?:project_bn|add)$",
)
def _mobilenet_v3() -> dict[str, int]:
    """MobileNet v3: rescales to [-1, 1] inside (``include_preprocessing=True``); stem + blocks."""
    return {"MobileNetV3Small": 224, "MobileNetV3Large": 224}


@register_family(
    "efficientnet",
    preprocess_mode="none",
    min_size=32,
    block_pattern=r"^(stem)_activation$|^(block\d+[a-z])_(?:project_bn|add)$",
    weights_url="https://storage.googleapis.com/keras-applications/",
)
def _efficientnet() -> dict[str, int]:
    """EfficientNet: Rescaling + Normalization are inside the model; one block per MBConv."""
    sizes = (224, 240, 260, 300, 380, 456, 528, 600)
    return {f"EfficientNetB{i}": size for i, size in enumerate(sizes)}


@register_family(
    "efficientnet_v2",
    preprocess_mode="none",
    min_size=32,
    block_pattern=r"^(stem)_activation$|^(block\d+[a-z])_(?:project_bn|project_activation|add)$",
)
def _efficientnet_v2() -> dict[str, int]:
    """EfficientNetV2: rescaling inside (``include_preprocessing``); one block per (Fused)MBConv."""
    sizes = {"B0": 224, "B1": 240, "B2": 260, "B3": 300, "S": 384, "M": 480, "L": 480}
    return {f"EfficientNetV2{variant}": size for variant, size in sizes.items()}


@register_family(
    "convnext",
    preprocess_mode="none",
    min_size=32,
    block_pattern=r"_(stem)$|_(stage_\d+_block_\d+)_identity$",
)
def _convnext() -> dict[str, int]:
    """ConvNeXt: normalization inside (``include_preprocessing``); stem, then one block per
    ConvNeXt block; each downsampling layer joins the first block of the stage it opens."""
    return {f"ConvNeXt{variant}": 224 for variant in ("Tiny", "Small", "Base", "Large", "XLarge")}


@register_family(
    "nasnet",
    preprocess_mode="tf",
    min_size=32,
    block_pattern=r"^((?:normal|reduction)_concat_\w+)$",
)
def _nasnet() -> dict[str, int]:
    """NASNet: one block per cell (two stem reductions, normal and reduction cells)."""
    return {"NASNetMobile": 224, "NASNetLarge": 331}
