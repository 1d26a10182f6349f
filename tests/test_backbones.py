"""The backbone registry: lookup, building, weights errors, blocks and freezing."""

from __future__ import annotations

import inspect
import json
import re

import keras
import numpy as np
import pytest

from bench.backbone_meta import measure_backbone
from training.errors import ConfigError, WeightsError
from training.model import backbones
from training.model.backbones import META_PATH, format_backbones, get_backbone, list_backbones
from training.model.blocks import set_trainable_top_blocks, unfreezable_blocks

EXPECTED = (
    ["VGG16", "VGG19", "ResNet50", "ResNet101", "ResNet152"]
    + ["ResNet50V2", "ResNet101V2", "ResNet152V2", "InceptionV3", "InceptionResNetV2"]
    + ["Xception", "DenseNet121", "DenseNet169", "DenseNet201", "MobileNet", "MobileNetV2"]
    + ["MobileNetV3Small", "MobileNetV3Large"]
    + [f"EfficientNetB{i}" for i in range(8)]
    + [f"EfficientNetV2{s}" for s in ("B0", "B1", "B2", "B3", "S", "M", "L")]
    + [f"ConvNeXt{s}" for s in ("Tiny", "Small", "Base", "Large", "XLarge")]
    + ["NASNetMobile", "NASNetLarge"]
)


@pytest.fixture(autouse=True)
def _fresh_keras_session():
    """Layer auto-names depend on what was built before; start each test from a clean slate."""
    keras.backend.clear_session()
    yield
    keras.backend.clear_session()


def test_registry_covers_every_family_once():
    names = [spec.name for spec in list_backbones()]
    assert sorted(names) == sorted(EXPECTED)
    for spec in list_backbones():
        assert hasattr(keras.applications, spec.constructor)
        assert spec.min_size <= spec.default_size
        assert spec.weights_url.startswith("https://storage.googleapis.com/")


@pytest.mark.parametrize(
    ("query", "name"),
    [("resnet50", "ResNet50"), ("RESNET50V2", "ResNet50V2"), ("efficientnet-b0", "EfficientNetB0")],
)
def test_get_backbone_ignores_case_and_separators(query, name):
    assert get_backbone(query).name == name


def test_unknown_backbone_suggests_the_closest():
    with pytest.raises(ConfigError) as info:
        get_backbone("resnet5")
    message = str(info.value)
    assert message.startswith("Unknown backbone 'resnet5'. Expected one of VGG16, VGG19,")
    assert message.endswith("did you mean ResNet50?")


@pytest.mark.parametrize(
    ("name", "mode"),
    [
        ("VGG16", "caffe"),
        ("ResNet50", "caffe"),
        ("ResNet50V2", "tf"),
        ("InceptionV3", "tf"),
        ("Xception", "tf"),
        ("MobileNetV2", "tf"),
        ("NASNetMobile", "tf"),
        ("DenseNet121", "torch"),
        ("EfficientNetB0", "none"),
        ("EfficientNetV2B0", "none"),
        ("ConvNeXtTiny", "none"),
        ("MobileNetV3Small", "none"),
    ],
)
def test_preprocess_modes(name, mode):
    assert get_backbone(name).preprocess_mode == mode


@pytest.mark.parametrize("name", ["MobileNetV3Small", "EfficientNetV2B0", "ConvNeXtTiny"])
def test_mode_none_constructors_default_to_preprocessing_inside(name):
    constructor = getattr(keras.applications, get_backbone(name).constructor)
    assert inspect.signature(constructor).parameters["include_preprocessing"].default is True


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "inside"),
    [
        ("EfficientNetB0", {"Rescaling", "Normalization"}),
        ("EfficientNetV2B0", {"Rescaling"}),
        ("ConvNeXtTiny", {"Normalization"}),
        ("MobileNetV3Small", {"Rescaling"}),
    ],
)
def test_mode_none_backbones_rescale_inside(name, inside):
    model = get_backbone(name).build(32, None)
    assert inside <= {type(layer).__name__ for layer in model.layers}


def test_meta_json_covers_every_registered_backbone():
    meta = json.loads(META_PATH.read_text(encoding="utf-8"))["backbones"]
    assert set(meta) == {spec.name for spec in list_backbones()}
    for spec in list_backbones():
        assert spec.params_backbone and spec.feature_dim and spec.num_layers, spec.name
        assert spec.params_with_top is None or spec.params_with_top > spec.params_backbone
        assert len(spec.blocks) >= 5, spec.name
        assert len(set(spec.blocks)) == len(spec.blocks), spec.name
        assert meta[spec.name]["min_size"] == spec.min_size


def test_build_rejects_sizes_below_the_minimum():
    with pytest.raises(ConfigError, match=r"InceptionV3 needs image_size >= 75.*image_size=64"):
        get_backbone("InceptionV3").build(64, None)
    with pytest.raises(ConfigError, match="integer image_size"):
        get_backbone("VGG16").build(32.0, None)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="pooling"):
        get_backbone("VGG16").build(32, None, pooling="mean")


def test_pretrained_top_needs_the_default_size():
    with pytest.raises(ConfigError, match=r"image_size=224\. Received: image_size=96"):
        get_backbone("ResNet50").build(96, "imagenet", include_top=True)


def test_build_without_weights_gives_pooled_features():
    model = get_backbone("VGG16").build(32, "none")
    assert model.output.shape == (None, 512)
    assert model.count_params() == get_backbone("VGG16").params_backbone


def test_failed_download_is_a_weights_error(monkeypatch):
    def no_network(*args, **kwargs):
        raise OSError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(keras.utils, "get_file", no_network)
    # keras.applications calls it through keras.src.utils.file_utils: patch that name as well.
    from keras.src.utils import file_utils

    monkeypatch.setattr(file_utils, "get_file", no_network)
    with pytest.raises(WeightsError) as info:
        get_backbone("VGG16").build(32, "imagenet")
    message = str(info.value)
    assert message.startswith("Could not download ImageNet weights for VGG16 (OSError: [Errno -3]")
    assert "--weights none" in message and "--weights PATH" in message
    assert "https://storage.googleapis.com/tensorflow/keras-applications/vgg16/" in message
    assert re.search(r"\.keras.models", message)


def test_missing_or_odd_weights_file(tmp_path):
    with pytest.raises(WeightsError, match="does not exist"):
        get_backbone("VGG16").build(32, str(tmp_path / "nope.weights.h5"))
    (tmp_path / "w.txt").write_text("not weights")
    with pytest.raises(WeightsError, match=r"Received: '.*w\.txt'"):
        get_backbone("VGG16").build(32, str(tmp_path / "w.txt"))


def test_local_weights_file_is_loaded(tmp_path):
    spec = get_backbone("MobileNetV2")
    source = spec.build(32, None)
    path = tmp_path / "mobilenet.weights.h5"
    source.save_weights(path)
    loaded = spec.build(32, str(path))
    for a, b in zip(source.weights, loaded.weights, strict=True):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))
    vgg_path = tmp_path / "vgg.weights.h5"
    get_backbone("VGG16").build(32, None).save_weights(vgg_path)
    with pytest.raises(WeightsError, match=r"Could not load weights from .* into MobileNetV2"):
        spec.build(32, vgg_path)


def _assert_partition(model, blocks):
    flat = [layer for block in blocks for layer in block.layers]
    assert [layer.name for layer in flat] == [layer.name for layer in model.layers]


def test_vgg_blocks_follow_the_paper():
    spec = get_backbone("VGG16")
    model = spec.build(32, None)
    blocks = unfreezable_blocks(model, spec)
    _assert_partition(model, blocks)
    assert [b.name for b in blocks] == ["block1", "block2", "block3", "block4", "block5"]
    assert blocks[0].layers[0].name == "input_layer"  # the weightless input joins block 1
    assert blocks[-1].layers[-2].name == "block5_pool"  # the pooling top joins the last block
    assert isinstance(blocks[-1].layers[-1], keras.layers.GlobalAveragePooling2D)
    assert tuple(b.name for b in blocks) == spec.blocks


def test_mobilenet_v2_counts_residual_blocks_once():
    spec = get_backbone("MobileNetV2")
    model = spec.build(32, None)
    blocks = unfreezable_blocks(model, spec)
    _assert_partition(model, blocks)
    names = [b.name for b in blocks]
    assert names == ["Conv1", "expanded_conv"] + [f"block_{i}" for i in range(1, 17)]
    block_2 = [layer.name for layer in blocks[names.index("block_2")].layers]
    assert block_2[0] == "block_2_expand" and block_2[-2:] == ["block_2_project_BN", "block_2_add"]
    assert [layer.name for layer in blocks[-1].layers][-3:-1] == ["Conv_1_bn", "out_relu"]
    assert tuple(names) == spec.blocks


def test_xception_keeps_auto_named_shortcuts_in_their_block():
    spec = get_backbone("Xception")
    model = spec.build(71, None)
    blocks = unfreezable_blocks(model, spec)
    _assert_partition(model, blocks)
    assert [b.name for b in blocks] == [f"block{i}" for i in range(1, 15)]
    for block in blocks:
        for layer in block.layers:
            match = re.match(r"(block\d+)_", layer.name)
            assert match is None or match.group(1) == block.name
    # block2's residual 1x1 conv, its BatchNorm and the add are auto-named but stay in block2
    kinds = [type(layer).__name__ for layer in blocks[1].layers]
    assert kinds[-3:] == ["MaxPooling2D", "BatchNormalization", "Add"]


def test_blocks_need_a_matching_model():
    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(2, 3)(inputs))
    with pytest.raises(ConfigError, match="no layers matching the ResNet50 block pattern"):
        unfreezable_blocks(model, get_backbone("ResNet50"))


def _trainable_names(model):
    return {layer.name for layer in model.layers if layer.trainable and layer.weights}


def test_set_trainable_top_blocks_unfreezes_from_the_top():
    spec = get_backbone("MobileNetV2")
    model = spec.build(32, None)
    blocks = unfreezable_blocks(model, spec)

    count = set_trainable_top_blocks(model, spec, 2, train_batchnorm=False)
    top_two = {layer.name for b in blocks[-2:] for layer in b.layers if layer.weights}
    bn = {
        layer.name for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)
    }
    assert _trainable_names(model) == top_two - bn
    assert count == sum(int(np.prod(w.shape)) for w in model.trainable_weights) > 0

    with_bn = set_trainable_top_blocks(model, spec, 2, train_batchnorm=True)
    assert _trainable_names(model) == top_two
    assert with_bn > count

    assert set_trainable_top_blocks(model, spec, 0, train_batchnorm=True) == 0
    assert model.trainable_weights == []

    everything = set_trainable_top_blocks(model, spec, "all", train_batchnorm=False)
    assert _trainable_names(model) == {layer.name for layer in model.layers if layer.weights} - bn
    assert everything == sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def test_set_trainable_top_blocks_rejects_out_of_range():
    spec = get_backbone("MobileNetV2")
    model = spec.build(32, None)
    with pytest.raises(ConfigError, match=r"0\.\.18 \(MobileNetV2 has 18 blocks\)\. Received: 19"):
        set_trainable_top_blocks(model, spec, 19)
    with pytest.raises(ConfigError, match="Received: -1"):
        set_trainable_top_blocks(model, spec, -1)


def test_nested_models_are_frozen_inside():
    spec = get_backbone("ConvNeXtTiny")
    model = spec.build(32, None)
    set_trainable_top_blocks(model, spec, 0)
    assert model.trainable_weights == []
    set_trainable_top_blocks(model, spec, "all")
    stem = model.get_layer("convnext_tiny_stem")
    assert all(layer.trainable for layer in stem.layers)
    assert stem.trainable_weights and len(stem.trainable_weights) == len(stem.weights)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["VGG16", "ResNet50", "MobileNetV2", "EfficientNetB0"])
def test_meta_json_matches_a_fresh_build(name):
    recorded = json.loads(META_PATH.read_text(encoding="utf-8"))["backbones"][name]
    assert measure_backbone(get_backbone(name)) == recorded


def test_specs_serialize_and_tabulate():
    spec = get_backbone("ResNet50")
    data = json.loads(json.dumps(spec.to_dict()))
    assert data["name"] == "ResNet50" and data["blocks"][:2] == ["pool1", "conv2_block1"]
    table = format_backbones(list_backbones()).splitlines()
    header = ["backbone", "family", "preprocess", "size", "min", "params", "features", "blocks"]
    assert table[0].split() == header
    assert len(table) == 1 + len(EXPECTED)
    assert table[3].split() == ["ResNet50", "resnet", "caffe", "224", "32", "23.6M", "2048", "17"]


def test_registering_a_name_twice_fails():
    with pytest.raises(ValueError, match="registered twice"):

        @backbones.register_family(
            "vgg_again",
            preprocess_mode="caffe",
            min_size=32,
            block_pattern=r"^(block\d+)_pool$",
            weights_url="",
        )
        def _again() -> dict[str, int]:
            return {"VGG16": 224}
