"""Unpacking archives: limits, layouts, clutter; the attacks themselves, through the CLI, are in
``tests/hostile/test_archives.py``."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from tests.imagegen import make_image_folder, make_tar, zip_folder
from training.data.archive import (
    ArchiveLimits,
    check_zip_entries,
    extract_archive,
    extract_zip,
)
from training.errors import ConfigError, UnsafeArchiveError


def files_under(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if not p.is_dir()}


@pytest.fixture
def sandbox(tmp_path):
    """A target inside an otherwise watched folder: nothing may appear outside the target."""
    outer = tmp_path / "outer"
    outer.mkdir()
    (outer / "keep.txt").write_text("mine")
    return outer, outer / "target"


def assert_nothing_written(outer: Path, target: Path) -> None:
    assert files_under(outer) == {"keep.txt"}
    assert not target.exists() or not any(target.iterdir())


def make_zip(path: Path, entries: list[tuple[str | zipfile.ZipInfo, bytes]]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries:
            archive.writestr(name, data)
    return path


PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def test_ratio_check_spares_small_compressible_files(tmp_path):
    archive = make_zip(tmp_path / "flat.zip", [("cat/flat.bmp", bytes(200_000)), ("dog/b", PNG)])
    root = extract_zip(archive, tmp_path / "out")
    assert (root / "cat" / "flat.bmp").stat().st_size == 200_000


def test_size_limits_per_entry_and_in_total(sandbox, tmp_path):
    outer, target = sandbox
    archive = make_zip(tmp_path / "big.zip", [("cat/a.png", PNG * 40), ("cat/b.png", PNG * 40)])
    with pytest.raises(UnsafeArchiveError, match="per file"):
        extract_zip(archive, target, ArchiveLimits(max_entry_bytes=1000))
    with pytest.raises(UnsafeArchiveError, match="would unpack to"):
        extract_zip(archive, target, ArchiveLimits(max_total_bytes=5000))
    assert_nothing_written(outer, target)


def test_limits_are_validated():
    with pytest.raises(ConfigError, match="max_entries"):
        ArchiveLimits(max_entries=0)


def test_zip_with_one_top_level_folder_returns_that_folder(tmp_path):
    folder = make_image_folder(tmp_path / "data", {"cat": 2, "dog": 2})
    archive = zip_folder(folder, tmp_path / "top.zip", top_level="my data")
    with zipfile.ZipFile(archive, "a") as extra:
        extra.writestr("__MACOSX/my data/._x.png", b"junk")
        extra.writestr(".DS_Store", b"junk")
    root = extract_zip(archive, tmp_path / "out")
    assert root == (tmp_path / "out" / "my data").resolve()
    assert files_under(root) == files_under(folder)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["my data"]


def test_zip_without_top_level_folder_returns_the_target(tmp_path):
    folder = make_image_folder(tmp_path / "data", {"cat": 2, "dog": 2})
    root = extract_zip(zip_folder(folder, tmp_path / "flat.zip"), tmp_path / "out")
    assert root == (tmp_path / "out").resolve()
    assert files_under(root) == files_under(folder)


def test_os_clutter_is_skipped(tmp_path):
    archive = make_zip(
        tmp_path / "mac.zip",
        [
            ("cat/a.png", PNG),
            ("cat/._a.png", b"resource fork"),
            ("__MACOSX/cat/._a.png", b"resource fork"),
            ("cat/.DS_Store", b"x"),
            ("dog/Thumbs.db", b"x"),
            ("dog/desktop.ini", b"x"),
            ("dog/b.png", PNG),
        ],
    )
    root = extract_zip(archive, tmp_path / "out")
    assert files_under(root) == {"cat/a.png", "dog/b.png"}


def test_check_zip_entries_lists_a_valid_keras_like_zip(tmp_path):
    archive = make_zip(
        tmp_path / "model.keras", [("config.json", b"{}"), ("model.weights.h5", PNG)]
    )
    names = [info.filename for info in check_zip_entries(archive)]
    assert names == ["config.json", "model.weights.h5"]


def test_tar_gz_is_unpacked_by_content_not_name(tmp_path):
    folder = make_image_folder(tmp_path / "data", {"cat": 2, "dog": 2})
    archive = tmp_path / "upload.bin"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="data")
        tar.addfile(tarfile.TarInfo("data/cat/._junk.png"), io.BytesIO(b""))
    root = extract_archive(archive, tmp_path / "out")
    assert root == (tmp_path / "out" / "data").resolve()
    assert files_under(root) == files_under(folder)


def test_tar_made_from_inside_the_folder_with_dot_entries(tmp_path):
    folder = make_image_folder(tmp_path / "data", {"cat": 2, "dog": 2})
    archive = tmp_path / "dot.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname=".")
    with tarfile.open(archive) as tar:
        assert tar.getnames()[0] == "."
    root = extract_archive(archive, tmp_path / "out")
    assert root == (tmp_path / "out").resolve()
    assert files_under(root) == files_under(folder)


def test_tar_limits_apply_before_extraction(sandbox, tmp_path):
    outer, target = sandbox
    members = [(tarfile.TarInfo(f"cat/{i}.png"), PNG) for i in range(6)]
    archive = make_tar(tmp_path / "many.tar.gz", members)
    with pytest.raises(UnsafeArchiveError, match="more than 5 entries"):
        extract_archive(archive, target, ArchiveLimits(max_entries=5))
    with pytest.raises(UnsafeArchiveError, match="would unpack to"):
        extract_archive(archive, target, ArchiveLimits(max_total_bytes=200))
    bomb = make_tar(tmp_path / "zeros.tar.gz", [(tarfile.TarInfo("cat/z.png"), bytes(8 * 1024**2))])
    with pytest.raises(UnsafeArchiveError, match="expands"):
        extract_archive(bomb, target)
    assert_nothing_written(outer, target)
