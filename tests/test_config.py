import pytest

from training.config import TrainConfig
from training.errors import ConfigError


def make(**overrides):
    return TrainConfig(data="d", backbone="MobileNetV2", **overrides)


def test_defaults_resolve_unfreeze_by_weights():
    assert make().resolved_unfreeze() == 2
    assert make(weights="none").resolved_unfreeze() == "all"
    assert make(weights=None).weights == "none"
    assert make(unfreeze="3").unfreeze == 3


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("lr", 0.0, "--lr"),
        ("lr", float("nan"), "--lr"),
        ("batch_size", 0, "--batch-size"),
        ("dropout", 1.5, "--dropout"),
        ("val_split", 0.95, "--val-split"),
        ("optimizer", "rmsprop", "--optimizer"),
        ("unfreeze", "some", "--unfreeze"),
        ("image_size", 4, "--image-size"),
    ],
)
def test_bad_values_name_the_flag_and_what_was_received(field, value, fragment):
    with pytest.raises(ConfigError) as error:
        make(**{field: value})
    assert fragment in str(error.value)
    assert "Received" in str(error.value)


def test_both_phases_skipped_is_refused():
    with pytest.raises(ConfigError, match="Both phases are skipped"):
        make(epochs_head=0, epochs_finetune=0)


def test_round_trip_and_fingerprint(tmp_path):
    config = make(lr=3e-4, unfreeze="all")
    path = tmp_path / "config.json"
    config.save(path)
    loaded = TrainConfig.load(path)
    assert loaded == config
    assert loaded.fingerprint("k1") == config.fingerprint("k1")
    assert config.fingerprint("k1") != config.fingerprint("k2")
    assert make(lr=1e-3).fingerprint("k1") != make(lr=2e-3).fingerprint("k1")


def test_unknown_field_in_saved_config_is_refused():
    with pytest.raises(ConfigError, match="Unknown config field"):
        TrainConfig.from_dict({"data": "d", "backbone": "x", "colour": "red"})


def test_a_search_hands_every_shared_field_to_its_fine_tunes_and_both_clis_offer_them():
    """The fields train and search share are declared once: a search's fine-tune gets each
    one's value, and both commands' parsers offer the same flag with the same help."""
    import argparse
    import dataclasses

    from training.config import SharedConfig
    from training.fields import add_arguments
    from tuner.config import SearchConfig

    shared = {
        "data": "elsewhere",
        "weights": "none",
        "image_size": 48,
        "batch_size": 7,
        "val_split": 0.3,
        "seed": 11,
        "class_weights": "none",
        "precision": "float32",
        "jit": "off",
        "devices": "1",
        "origin": "20261207-101500-vgg16-ab12:underfitting",
    }
    assert set(shared) == {f.name for f in dataclasses.fields(SharedConfig)}
    search = SearchConfig(backbones=["MobileNetV2"], **shared)
    fine_tune = search.train_config("MobileNetV2", lr=0.01)
    assert {name: getattr(fine_tune, name) for name in shared} == search.shared_values()
    assert fine_tune.devices == 1 and fine_tune.lr == 0.01

    def helps(cls):
        parser = argparse.ArgumentParser()
        add_arguments(parser, cls)
        return {a.dest: a.help for a in parser._actions if a.dest in shared}

    assert helps(TrainConfig) == helps(SearchConfig)
    assert len(helps(TrainConfig)) == len(shared)
