"""A full disk at each write a later run reads: the image cache, the feature cache, phase 1's
weights, phase 2's checkpoints, the history, the predictions and the model.

Each injected ``OSError(ENOSPC)`` must be one message naming the file (no traceback), leave
nothing a later run would trust, and the same command, run again, must complete. The writers
fail the way a filling disk does: half a file is left where they were told to write, then
ENOSPC.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import keras
import numpy as np
import pytest

from tests.imagegen import make_image_folder
from training.cli import main
from training.data import cache as cache_module
from training.data.audit import audit_dataset
from training.data.cache import load_or_build_cache, open_cache
from training.data.images import load_rgb
from training.data.scan import scan_dataset
from training.errors import WriteError
from training.fit.callbacks import ThrottledBackupAndRestore
from training.fit.feature_cache import FeatureCache
from training.model.backbones import get_backbone
from training.predict import load_model_file, predict_arrays
from training.store import RunStore


def no_space() -> OSError:
    return OSError(errno.ENOSPC, "No space left on device")


def full_disk_at(monkeypatch, owner, attr: str, name: str, path_arg: int = 0) -> None:
    """``owner.attr`` fails on a file whose name ends in ``name`` (its path is positional
    argument ``path_arg``): half a file there, then ENOSPC. Other writes go through."""
    original = getattr(owner, attr)

    def writer(*args, **kwargs):
        path = Path(args[path_arg])
        if not path.name.endswith(name):
            return original(*args, **kwargs)
        with open(path, "wb") as fp:
            fp.write(b"PK\x03\x04 half a file")
        raise no_space()

    monkeypatch.setattr(owner, attr, writer)


def leftovers(folder: Path) -> list[Path]:
    """Temporary files or folders of a failed write."""
    return [p for p in folder.rglob(".*") if ".tmp" in p.name]


# -- the image cache ------------------------------------------------------------------------


def build_cache(folder: Path, root: Path):
    report = audit_dataset(scan_dataset(folder))
    return load_or_build_cache(report.readable(), report.classes, 16, root, progress=False)


def assert_true_pixels(cache, folder: Path) -> None:
    for i, rel in enumerate(cache.rels):
        np.testing.assert_array_equal(cache.images[i], load_rgb(folder / rel, 16))


def fail_allocating(monkeypatch):
    def allocate(fd, offset, length):
        raise no_space()

    monkeypatch.setattr(os, "posix_fallocate", allocate, raising=False)


def fail_manifest(monkeypatch):
    full_disk_at(monkeypatch, Path, "write_text", cache_module.MANIFEST_FILE)


@pytest.mark.parametrize("inject", [fail_allocating, fail_manifest], ids=["images", "manifest"])
def test_full_disk_building_the_image_cache_leaves_no_cache_and_a_rerun_builds_it(
    tmp_path, monkeypatch, inject
):
    folder = make_image_folder(tmp_path / "d", {"a": 3, "b": 3})
    root = tmp_path / "cache"
    with monkeypatch.context() as patch:
        inject(patch)
        with pytest.raises(WriteError, match=r"images-\w+: disk full \(No space left on device\)"):
            build_cache(folder, root)
    assert list(root.iterdir()) == []  # neither the cache nor its temporary folder
    assert_true_pixels(build_cache(folder, root), folder)


def test_train_names_the_image_cache_it_could_not_write(tmp_path, monkeypatch, capsys):
    folder = make_image_folder(tmp_path / "d", {"a": 3, "b": 3})
    fail_allocating(monkeypatch)
    code = main(["train", str(folder), "--backbone", "VGG16", "--weights", "none"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.strip().splitlines()[-1].startswith("error: Could not write ")
    assert "Traceback" not in err
    assert "images-" in err and "disk full" in err and "run the same command again" in err
    home = RunStore().home
    assert list((home / "cache").glob("*images-*")) == [] and RunStore().list_runs() == []


def test_a_damaged_image_cache_is_rebuilt_not_mapped(tmp_path, monkeypatch):
    folder = make_image_folder(tmp_path / "d", {"a": 3, "b": 3})
    root = tmp_path / "cache"
    directory = build_cache(folder, root).directory
    images, manifest = directory / cache_module.IMAGES_FILE, directory / cache_module.MANIFEST_FILE
    decoded = []
    monkeypatch.setattr(cache_module, "load_rgb", lambda *a: decoded.append(1) or load_rgb(*a))
    damages = [
        lambda: images.write_bytes(images.read_bytes()[:100]),  # truncated
        lambda: manifest.unlink(),  # a folder some other tool left without its manifest
        lambda: manifest.write_text('{"rels": ['),  # torn
    ]
    for damage in damages:
        damage()
        assert_true_pixels(build_cache(folder, root), folder)
    assert len(decoded) == 3 * 6
    build_cache(folder, root)
    assert len(decoded) == 3 * 6  # a whole cache is read back, not decoded again


# -- the feature cache ----------------------------------------------------------------------


def row_features(rows):
    return np.stack([np.full(4, r, np.float32) for r in rows])


def test_full_disk_caching_features_warns_and_the_next_run_caches_them(tmp_path, monkeypatch):
    folder, rows = tmp_path / "features", np.array([3, 0, 5])
    messages: list[str] = []
    with monkeypatch.context() as patch:
        full_disk_at(patch, np, "savez", "features.npz")
        features = FeatureCache(folder, 6, echo=messages.append).get(rows, row_features)
    np.testing.assert_array_equal(features[:, 0], rows)  # the run goes on with them
    (warning,) = messages
    assert str(folder / "features.npz") in warning and "disk full" in warning
    assert list(folder.iterdir()) == []

    computed: list[list[int]] = []

    def compute(todo):
        computed.append(list(todo))
        return row_features(todo)

    FeatureCache(folder, 6).get(rows, compute)
    np.testing.assert_array_equal(FeatureCache(folder, 6).get(rows, compute)[:, 0], rows)
    assert computed == [[0, 3, 5]]  # computed by the next run, then read back


def test_a_truncated_feature_file_is_computed_again(tmp_path):
    folder, rows = tmp_path / "features", np.array([1, 2])
    FeatureCache(folder, 4).get(rows, row_features)
    stored = folder / "features.npz"
    stored.write_bytes(stored.read_bytes()[:-40])
    computed = []
    again = FeatureCache(folder, 4).get(rows, lambda todo: computed.append(1) or row_features(todo))
    np.testing.assert_array_equal(again[:, 0], rows)
    assert computed == [1]


# -- phase 2's checkpoints ------------------------------------------------------------------


class Epochs(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.seen: list[int] = []

    def on_epoch_end(self, epoch, logs=None):
        self.seen.append(epoch + 1)


def fit_with_backup(backup_dir: Path) -> tuple[list[int], list[str]]:
    """Three epochs of a tiny model, checkpointed after each: the epochs this fit ran, and
    what the checkpoint callback said."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    x, y = np.random.default_rng(0).normal(size=(8, 3)), np.arange(8) % 2
    messages: list[str] = []
    backup = ThrottledBackupAndRestore(str(backup_dir), min_interval_s=0, echo=messages.append)
    epochs = Epochs()
    model.fit(x, y, epochs=3, batch_size=4, callbacks=[backup, epochs], verbose=0)
    return epochs.seen, messages


@pytest.mark.core
def test_full_disk_at_a_checkpoint_keeps_the_previous_one_and_the_fit_resumes(
    tmp_path, monkeypatch
):
    backup_dir = tmp_path / "backup"
    saves = keras.Model.save_weights
    calls = []

    def second_save_fails(model, path, *args, **kwargs):
        calls.append(path)
        if len(calls) == 2:
            Path(path).write_bytes(b"half a file")
            raise no_space()
        return saves(model, path, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(keras.Model, "save_weights", second_save_fails)
        with pytest.raises(WriteError, match=r"latest\.weights\.h5: disk full"):
            fit_with_backup(backup_dir)
    assert json.loads((backup_dir / "training_metadata.json").read_text())["epoch"] == 1
    assert sorted(p.name for p in backup_dir.iterdir()) == [
        "latest.weights.h5",
        "training_metadata.json",
    ]
    assert fit_with_backup(backup_dir) == ([2, 3], [])  # resumed after the saved epoch
    assert not backup_dir.exists()  # deleted once the fit finished, as BackupAndRestore does


@pytest.mark.core
def test_a_damaged_checkpoint_is_discarded_and_the_phase_starts_over(tmp_path, monkeypatch):
    backup_dir = tmp_path / "backup"
    monkeypatch.setattr(ThrottledBackupAndRestore, "on_train_end", lambda self, logs=None: None)
    fit_with_backup(backup_dir)  # keeps its checkpoint, as a killed fit would
    weights = backup_dir / "latest.weights.h5"
    weights.write_bytes(weights.read_bytes()[:200])
    epochs, (warning,) = fit_with_backup(backup_dir)
    assert epochs == [1, 2, 3]
    assert "could not be read" in warning and str(backup_dir) in warning


# -- a whole run: phase 1's weights, features, history, predictions, the model ---------------


@pytest.fixture
def weights_file(tmp_path):
    """VGG16 weights in a file (random values: what matters is that they are pretrained
    weights, whose features are cached)."""
    path = tmp_path / "vgg16-32.weights.h5"
    get_backbone("VGG16").build(32, None).save_weights(path)
    return path


@pytest.mark.core
def test_full_disk_at_each_write_of_a_run_then_the_same_command_completes(
    tmp_path, weights_file, monkeypatch, capsys
):
    data = make_image_folder(tmp_path / "d", {"red": 6, "green": 6}, size=32)
    command = ["train", str(data), "--backbone", "VGG16", "--weights", str(weights_file)]
    command += ["--image-size", "32", "--batch-size", "4", "--epochs-head", "1"]
    command += ["--epochs-finetune", "0", "--lr", "1e-4"]
    store = RunStore()

    def run(failing: str) -> str:
        """The command, failing at the run's file ``failing``: one message, exit 1, the one run
        left resumable and no half-written file; what it printed."""
        assert main(command) == 1
        out, err = capsys.readouterr()
        (run_,) = store.list_runs()
        message = err.strip().splitlines()[-1]
        assert message.startswith(f"error: Could not write {run_.path / failing}: disk full")
        assert "Traceback" not in err and run_.status == "interrupted"
        assert not (run_.path / failing).exists() and leftovers(store.home) == []
        return out

    with monkeypatch.context() as patch:
        full_disk_at(patch, np, "savez", "features.npz")
        full_disk_at(patch, keras.Model, "save_weights", "phase1.weights.h5", path_arg=1)
        out = run("phase1.weights.h5")
    assert "the features could not be cached" in out and "disk full" in out
    assert not list(store.cache_dir().glob("features-*/*"))
    (run_id,) = [r.id for r in store.list_runs()]

    with monkeypatch.context() as patch:
        full_disk_at(patch, Path, "write_text", "history.json")
        out = run("history.json")
    assert f"Resuming run {run_id}" in out and store.artifact(run_id, "phase1").is_file()
    assert list(store.cache_dir().glob("features-*/features.npz"))  # cached this time

    with monkeypatch.context() as patch:
        full_disk_at(patch, np, "savez", "predictions.npz")
        out = run("predictions.npz")
    assert "Phase 1 already finished" in out and "features of all" in out

    phase1 = store.artifact(run_id, "phase1")
    phase1.write_bytes(phase1.read_bytes()[:1000])  # damaged some other way: never trusted
    with monkeypatch.context() as patch:
        full_disk_at(patch, keras.Model, "save", "model.keras", path_arg=1)
        out = run("model.keras")
    assert "could not be read" in out and "phase 1 is trained again" in out

    assert main(command) == 0
    out = capsys.readouterr().out
    assert f"Resuming run {run_id}" in out and "Phase 1 already finished" in out
    (done,) = store.list_runs()
    assert done.status == "completed" and leftovers(store.home) == []
    json.loads(store.artifact(run_id, "history").read_text())
    saved = np.load(store.artifact(run_id, "predictions"))
    cache = open_cache(store.cache_dir() / f"images-{saved['cache_key']}")
    model = load_model_file(store.artifact(run_id, "model"))
    again = predict_arrays(model, np.asarray(cache.images[saved["rows"]]))
    np.testing.assert_allclose(again, saved["probabilities"], atol=1e-5)
