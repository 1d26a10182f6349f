"""Fixed costs paid once: a second run on unchanged data reads the audit and the backbone
features back instead of redoing them, and ``--top-k 0`` is a head search with no fine-tune."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

import training.fit.features
import training.fit.prepare
import training.fit.two_phase
import tuner.search
from tests.imagegen import make_image_folder
from training.data.audit import audit_dataset
from training.data.audit_cache import cached_audit
from training.data.scan import scan_dataset
from training.fit.feature_cache import FeatureCache
from training.model.backbones import get_backbone
from training.store import RunStore
from training.store.trials import trials
from tuner.cli import main as tuner_main
from tuner.config import SearchConfig
from tuner.search import search


@pytest.fixture
def colours(tmp_path):
    return make_image_folder(tmp_path / "colours", {"red": 10, "green": 10, "blue": 10}, size=32)


@pytest.fixture
def weights_file(tmp_path):
    """A backbone weights file (random values: what matters here is that it is a file)."""
    path = tmp_path / "vgg16-32.weights.h5"
    get_backbone("VGG16").build(32, None).save_weights(path)
    return path


@pytest.fixture
def calls(monkeypatch):
    """How many times the audit and the backbone feature pass actually ran, and how many
    backbones a search built."""
    counts = {"audit": 0, "features": 0, "builds": 0}
    audit, extract = training.fit.prepare.audit_dataset, training.fit.features.extract_features
    build = tuner.search.build_classifier

    def counted_build(*args, **kwargs):
        counts["builds"] += 1
        return build(*args, **kwargs)

    def counted_audit(*args, **kwargs):
        counts["audit"] += 1
        return audit(*args, **kwargs)

    def counted_extract(*args, **kwargs):
        counts["features"] += 1
        return extract(*args, **kwargs)

    monkeypatch.setattr(training.fit.prepare, "audit_dataset", counted_audit)
    monkeypatch.setattr(training.fit.features, "extract_features", counted_extract)
    monkeypatch.setattr(tuner.search, "build_classifier", counted_build)
    return counts


def head_search(data, weights, **overrides) -> SearchConfig:
    values = dict(
        data=str(data),
        backbones=["VGG16"],
        weights=str(weights),
        image_size=32,
        batch_size=8,
        trials=2,
        stages=1,
        epochs_head=2,
        top_k=0,
    )
    return SearchConfig(**{**values, **overrides})


def feature_dirs(store: RunStore) -> list:
    return sorted(store.cache_dir().glob("features-*"))


@pytest.mark.core
def test_a_second_head_search_reuses_the_audit_and_features_and_finds_the_same(
    colours, weights_file, calls
):
    messages: list[str] = []
    first = search(head_search(colours, weights_file), verbose=0, echo=messages.append)
    assert calls == {"audit": 1, "features": 1, "builds": 1}
    second = search(head_search(colours, weights_file), verbose=0, echo=messages.append)
    assert calls == {"audit": 1, "features": 1, "builds": 1}  # nothing ran or was built again
    assert any("reused from the cache" in m for m in messages)
    store = RunStore()
    assert len(feature_dirs(store)) == 1
    scores = [
        [-1.0 if t["score"] is None else t["score"] for t in trials(store, r.run_id)]
        for r in (first, second)
    ]
    np.testing.assert_allclose(scores[0], scores[1], atol=1e-6)  # same features, same trials
    # --top-k 0: the best head configuration is the answer; nothing is fine-tuned or saved.
    assert store.list_runs(kind="train") == []
    assert second.summary["model"] is None and second.summary["best_run"] is None
    assert second.summary["hyperparameters"] and second.summary["seconds"]["finetune"] < 1
    assert not store.artifact(second.run_id, "model").exists()


def test_a_changed_image_is_audited_again_and_its_features_computed(colours, weights_file, calls):
    search(head_search(colours, weights_file), verbose=0, echo=lambda m: None)
    victim = next((colours / "red").iterdir())
    Image.new("RGB", (32, 32), (0, 0, 255)).save(victim)
    search(head_search(colours, weights_file), verbose=0, echo=lambda m: None)
    assert calls["audit"] == 2 and calls["features"] == 2
    assert len(feature_dirs(RunStore())) == 2  # the dataset's content key changed


def test_other_weights_get_their_own_features_and_random_weights_none(
    colours, weights_file, tmp_path, calls
):
    other = tmp_path / "other.weights.h5"
    get_backbone("VGG16").build(32, None).save_weights(other)  # new random values
    search(head_search(colours, weights_file), verbose=0, echo=lambda m: None)
    search(head_search(colours, other), verbose=0, echo=lambda m: None)
    assert calls["features"] == 2 and len(feature_dirs(RunStore())) == 2
    # Random initial weights are drawn and recalibrated per run: never cached.
    before = calls["features"]
    search(head_search(colours, "none"), verbose=0, echo=lambda m: None)
    assert calls["features"] > before
    assert len(feature_dirs(RunStore())) == 2
    assert calls["audit"] == 1  # the data never changed


def test_top_k_0_on_the_command_line_prints_how_to_train_the_best(colours, weights_file, capsys):
    code = tuner_main(
        [
            *("search", str(colours), "--backbone", "VGG16", "--weights", str(weights_file)),
            *("--image-size", "32", "--trials", "2", "--stages", "1", "--epochs-head", "2"),
            *("--top-k", "0", "--batch-size", "8"),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "no model trained" in out
    line = next(x for x in out.splitlines() if "to train it:" in x)
    assert f"train {colours} --backbone VGG16 --weights {weights_file}" in line
    assert "--lr " in line and "--optimizer " in line
    assert RunStore().list_runs(kind="train") == []


def test_feature_cache_computes_only_missing_rows_and_survives_a_damaged_file(tmp_path):
    asked: list[list[int]] = []

    def compute(rows):
        asked.append(list(rows))
        return np.stack([np.full(3, r, np.float32) for r in rows])

    cache = FeatureCache(tmp_path / "f", rows=6)
    np.testing.assert_array_equal(cache.get(np.array([4, 1]), compute)[:, 0], [4, 1])
    again = FeatureCache(tmp_path / "f", rows=6)  # a later process
    np.testing.assert_array_equal(again.get(np.array([1, 2, 4]), compute)[:, 0], [1, 2, 4])
    assert asked == [[1, 4], [2]]
    (tmp_path / "f" / "features.npz").write_bytes(b"not a zip")
    damaged = FeatureCache(tmp_path / "f", rows=6)
    np.testing.assert_array_equal(damaged.get(np.array([2]), compute)[:, 0], [2])
    assert asked[-1] == [2]


def test_audit_cache_gives_the_same_report_and_redoes_a_damaged_one(colours, tmp_path):
    done = []

    def audit(scanned):
        done.append(1)
        return audit_dataset(scanned)

    fresh = cached_audit(scan_dataset(colours), tmp_path / "cache", audit)
    cached = cached_audit(scan_dataset(colours), tmp_path / "cache", audit)
    assert len(done) == 1
    assert json.dumps(cached.to_dict()) == json.dumps(fresh.to_dict())
    assert cached.readable()[0].path.is_file()
    for stored in (tmp_path / "cache" / "audits").iterdir():
        stored.write_text("{")
    cached_audit(scan_dataset(colours), tmp_path / "cache", audit)
    assert len(done) == 2
