"""A disk that fills during phase 2, caches whose content is not what was written, and files
where the home keeps its folders: one message naming the file, nothing lost, no crash."""

from __future__ import annotations

import errno
import gc
import json
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest

from tests.cli_process import run_cli
from tests.hostile.conftest import snapshot
from tests.imagegen import make_image_folder, zip_folder
from training.data.audit import audit_dataset
from training.data.audit_cache import cached_audit, scan_key
from training.data.cache import IMAGES_FILE, load_or_build_cache
from training.data.scan import scan_dataset
from training.fit.feature_cache import FeatureCache
from training.store import RunStore

TRAIN = ("--backbone", "VGG16", "--weights", "none", "--image-size", "32", "--batch-size", "4")
TRAIN += ("--epochs-head", "1", "--epochs-finetune", "1")
CHECKPOINT = "backup/phase2/latest.weights.h5"
FULL = "disk full (No space left on device)"


# -- a full disk at phase 2's checkpoint ------------------------------------------------------


def fill_the_disk_at(monkeypatch, name: str) -> None:
    """HDF5 writing a file named ``…name`` meets a full disk at its third dataset: that write
    fails with ENOSPC and the file's descriptor now points at /dev/full, where the kernel
    answers every later write (the flush as the file closes included) with ENOSPC too."""
    if not os.path.exists("/dev/full"):
        pytest.skip("needs /dev/full (Linux)")
    original, seen = h5py.Group.__setitem__, []

    def setitem(group, key, value):
        if group.file.filename.endswith(name):
            seen.append(key)
            if len(seen) == 3:
                full = os.open("/dev/full", os.O_WRONLY)
                os.dup2(full, group.file.id.get_vfd_handle())
                os.close(full)
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return original(group, key, value)

    monkeypatch.setattr(h5py.Group, "__setitem__", setitem)


def left_open() -> list[str]:
    """HDF5 files this process still holds open."""
    return [os.fsdecode(f.name) for f in h5py.h5f.get_obj_ids(types=h5py.h5f.OBJ_FILE)]


def test_a_full_disk_at_phase_2s_checkpoint_is_one_message_and_the_run_resumes(
    cli, tmp_path, monkeypatch
):
    data = make_image_folder(tmp_path / "d", {"red": 6, "green": 6}, size=32)
    unraisable = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    with monkeypatch.context() as patch:
        fill_the_disk_at(patch, "latest.weights.h5")
        result = cli("train", data, *TRAIN)
        gc.collect()  # what HDF5 still held would fail its flush here
    assert left_open() == [] and unraisable == []
    (run,) = RunStore().list_runs()
    (message,) = [line for line in result.err.splitlines() if line.startswith("error:")]
    assert result.code == 1 and run.status == "interrupted"
    assert result.err.count("Could not write") == 1
    assert message.startswith(f"error: Could not write {run.path / CHECKPOINT}: {FULL}. ")
    assert (run.path / "phase1.weights.h5").is_file()
    assert [p for p in RunStore().home.rglob("*") if p.name.startswith((".tmp", "tmp"))] == []

    again = cli("train", data, *TRAIN)
    assert again.code == 0 and f"Resuming run {run.id}" in again.out
    assert RunStore().get_run(run.id).status == "completed"


@pytest.fixture
def small_disk(tmp_path):
    """A 100 MB filesystem: VGG16's phase 1 weights fit (57 MB), its phase 2 checkpoint with
    the optimizer's state (170 MB) does not."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small filesystem needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=100m", "tmpfs", str(disk)], capture_output=True
    )
    if mounted.returncode:
        pytest.skip(f"this machine does not allow mounting a tmpfs: {mounted.stderr.decode()}")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


def test_a_real_full_disk_during_phase_2_exits_1_without_a_crash(tmp_path, small_disk):
    data = make_image_folder(tmp_path / "d", {"red": 6, "green": 6}, size=32)
    home = small_disk / "home"
    done = run_cli("train", str(data), *TRAIN, home=home, timeout=600)
    assert done.returncode == 1, done.stderr[-3000:]  # a crash in HDF5's cleanup was 139
    assert "Exception ignored" not in done.stderr and "Traceback" not in done.stderr
    assert done.stderr.count("Could not write") == 1
    (run,) = RunStore(home).list_runs()
    (message,) = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert message.startswith(f"error: Could not write {run.path / CHECKPOINT}: {FULL}. ")
    assert run.status == "interrupted" and (run.path / "phase1.weights.h5").is_file()
    assert [p for p in home.rglob("*") if p.name.startswith((".tmp", "tmp"))] == []


# -- caches checked by content, not size ------------------------------------------------------


class ImageCaches:
    """Two datasets' decoded images, the same number of rows at the same size."""

    same_size = True  # what was checked before the digest

    def __init__(self, tmp_path):
        self.root = tmp_path / "cache"
        self.folders = [
            make_image_folder(tmp_path / "d1", {"a": 3, "b": 3}, size=16),
            make_image_folder(tmp_path / "d2", {"a": 3, "b": 3}, size=24),  # other pixels
        ]

    def build(self, which: int, echo):
        """(what a run reads, the file to damage, the path the message names)."""
        report = audit_dataset(scan_dataset(self.folders[which]))
        cache = load_or_build_cache(
            report.readable(), report.classes, 16, self.root, progress=False, echo=echo
        )
        return np.array(cache.images).tobytes(), cache.directory / IMAGES_FILE, cache.directory


class FeatureCaches:
    """Two keys' features of the same six rows (each key its own values)."""

    same_size = True

    def __init__(self, tmp_path):
        self.root = tmp_path / "cache"

    def build(self, which: int, echo):
        cache = FeatureCache(self.root / f"features-{which}", 6, echo=echo)
        values = cache.get(
            np.arange(6), lambda todo: np.repeat(100.0 * which + todo[:, None], 4, axis=1)
        )
        return values.tobytes(), cache.path, cache.path


class AuditCaches:
    """Two datasets' stored audit reports (read back whenever they parsed)."""

    same_size = False

    def __init__(self, tmp_path):
        self.root = tmp_path / "cache"
        self.folders = ImageCaches(tmp_path).folders

    def build(self, which: int, echo):
        scanned = scan_dataset(self.folders[which])
        report = cached_audit(scanned, self.root, audit_dataset, echo=echo)
        stored = self.root / "audits" / f"{scan_key(scanned)}.json"
        return json.dumps(report.to_dict()), stored, stored


@pytest.mark.parametrize("damage", ["zeros of the same size", "two caches swapped"])
@pytest.mark.parametrize(
    "kind", [ImageCaches, FeatureCaches, AuditCaches], ids=lambda k: k.__name__
)
def test_a_cache_not_as_written_is_rebuilt_saying_so(tmp_path, kind, damage):
    caches = kind(tmp_path)
    fresh = [caches.build(which, print) for which in (0, 1)]
    files = [file for _, file, _ in fresh]
    assert not kind.same_size or files[0].stat().st_size == files[1].stat().st_size
    if damage.startswith("zeros"):
        files[0].write_bytes(bytes(files[0].stat().st_size))
        damaged = [0]
    else:
        first, second = (f.read_bytes() for f in files)
        files[0].write_bytes(second)
        files[1].write_bytes(first)
        damaged = [0, 1]
    said: list[str] = []
    again = [caches.build(which, said.append) for which in (0, 1)]
    assert [content for content, _, _ in again] == [content for content, _, _ in fresh]
    assert len(said) == len(damaged)
    for which, line in zip(damaged, said, strict=True):
        assert f" {fresh[which][2]} " in line and "\n" not in line and line.startswith("warning:")
    quiet: list[str] = []
    assert [caches.build(w, quiet.append)[0] for w in (0, 1)] == [c for c, _, _ in fresh]
    assert quiet == []  # rebuilt whole: trusted again


# -- a file where the home keeps a folder ------------------------------------------------------


@pytest.mark.parametrize("command", ["train", "audit", "audit a zip"])
@pytest.mark.parametrize("folder", ["cache", "datasets"])
def test_a_file_where_the_home_keeps_a_folder_is_one_message_and_exit_2(
    cli, tmp_path, babysitter_home, folder, command
):
    data = make_image_folder(tmp_path / "data", {"cat": 3, "dog": 3})
    archive = zip_folder(data, tmp_path / "data.zip")
    babysitter_home.mkdir()
    (babysitter_home / folder).write_text("someone's notes")
    argv = {"train": ("train", data, *TRAIN), "audit": ("audit", data)}
    argv["audit a zip"] = ("audit", archive)
    before = snapshot(tmp_path)
    result = cli(*argv[command])
    assert result.code == 2
    (message,) = [line for line in result.err.splitlines() if line.startswith("error:")]
    assert message.startswith(f"error: {(babysitter_home / folder).resolve()} is a file, not a ")
    after = snapshot(tmp_path)
    assert {path: after.get(path) for path in before} == before  # nothing deleted or changed
    assert RunStore().list_runs() == []
