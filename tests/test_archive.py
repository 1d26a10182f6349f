"""Unpacking real hostile and sloppy archives: refused before writing, or unpacked safely."""

from __future__ import annotations

import io
import stat
import struct
import tarfile
import zipfile
import zlib
from pathlib import Path

import pytest

from tests.imagegen import make_image_folder, zip_folder
from training.data.archive import (
    ArchiveLimits,
    check_zip_entries,
    extract_archive,
    extract_tar,
    extract_zip,
)
from training.errors import ConfigError, DataError, UnsafeArchiveError


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


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("../evil.png", "outside"),
        ("cat/../../evil.png", "outside"),
        ("/tmp/evil.png", "absolute"),
        ("C:/evil.png", "absolute"),
        ("cat\\..\\..\\evil.png", "backslash"),
    ],
)
def test_unsafe_zip_paths_are_refused_before_writing(sandbox, tmp_path, name, message):
    outer, target = sandbox
    archive = make_zip(tmp_path / "bad.zip", [("cat/ok.png", PNG), (name, PNG)])
    with pytest.raises(UnsafeArchiveError, match=message) as info:
        extract_zip(archive, target)
    assert repr(name) in str(info.value) and "re-create the archive" in str(info.value)
    assert_nothing_written(outer, target)
    assert not (tmp_path / "evil.png").exists()


def test_symlink_entries_are_refused(sandbox, tmp_path):
    outer, target = sandbox
    link = zipfile.ZipInfo("cat/passwd.png")
    link.create_system = 3
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    archive = make_zip(tmp_path / "link.zip", [("cat/a.png", PNG), (link, b"/etc/passwd")])
    with pytest.raises(UnsafeArchiveError, match="symbolic link"):
        extract_zip(archive, target)
    assert_nothing_written(outer, target)


def overlapping_zip(path: Path, names: list[str], payload: bytes) -> Path:
    """A non-recursive zip bomb: many directory entries that all point at one compressed blob."""
    data = zlib.compress(payload)[2:-4]  # raw deflate
    crc, first = zlib.crc32(payload), names[0].encode()
    local = struct.pack(
        "<4s5H3L2H", b"PK\x03\x04", 20, 0, 8, 0, 0, crc, len(data), len(payload), len(first), 0
    )
    body = local + first + data
    central = b""
    for name in names:
        raw = name.encode()
        central += struct.pack(
            "<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 8, 0, 0, crc, len(data), len(payload),
            len(raw), 0, 0, 0, 0, 0, 0,
        ) + raw  # fmt: skip
    end = struct.pack(
        "<4s4H2LH", b"PK\x05\x06", 0, 0, len(names), len(names), len(central), len(body), 0
    )
    path.write_bytes(body + central + end)
    return path


def test_overlapping_entry_zip_bomb_is_refused(sandbox, tmp_path):
    outer, target = sandbox
    archive = overlapping_zip(tmp_path / "overlap.zip", [f"cat/{i}.png" for i in range(50)], PNG)
    with pytest.raises(UnsafeArchiveError, match="overlap"):
        check_zip_entries(archive)
    with pytest.raises(UnsafeArchiveError, match="overlap"):
        extract_zip(archive, target)
    assert_nothing_written(outer, target)


def test_high_ratio_bomb_is_refused(sandbox, tmp_path):
    outer, target = sandbox
    archive = make_zip(tmp_path / "zeros.zip", [("cat/zeros.png", bytes(20 * 1024**2))])
    with pytest.raises(UnsafeArchiveError, match="expands") as info:
        extract_zip(archive, target)
    assert "'cat/zeros.png'" in str(info.value)
    assert_nothing_written(outer, target)


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


def test_too_many_entries_are_refused(sandbox, tmp_path):
    outer, target = sandbox
    archive = make_zip(tmp_path / "many.zip", [(f"cat/{i}.png", PNG) for i in range(12)])
    with pytest.raises(UnsafeArchiveError, match="12 entries, over the limit of 10"):
        extract_zip(archive, target, ArchiveLimits(max_entries=10))
    assert_nothing_written(outer, target)


def test_limits_are_validated():
    with pytest.raises(ConfigError, match="max_entries"):
        ArchiveLimits(max_entries=0)


def _patch_all(data: bytes, signature: bytes, offset: int, fmt: str, value: int) -> bytes:
    buffer = bytearray(data)
    start = 0
    while (start := buffer.find(signature, start)) >= 0:
        struct.pack_into(fmt, buffer, start + offset, value)
        start += 4
    return bytes(buffer)


def test_encrypted_entries_are_refused(sandbox, tmp_path):
    outer, target = sandbox
    data = make_zip(tmp_path / "plain.zip", [("cat/a.png", PNG)]).read_bytes()
    data = _patch_all(data, b"PK\x03\x04", 6, "<H", 1)
    data = _patch_all(data, b"PK\x01\x02", 8, "<H", 1)
    (tmp_path / "locked.zip").write_bytes(data)
    with pytest.raises(UnsafeArchiveError, match="encrypted"):
        extract_zip(tmp_path / "locked.zip", target)
    assert_nothing_written(outer, target)


def test_entry_larger_than_declared_aborts_and_removes_what_was_written(sandbox, tmp_path):
    outer, target = sandbox
    liar = bytes(range(256)) * 8
    data = make_zip(tmp_path / "ok.zip", [("cat/a.png", PNG), ("cat/z.png", liar)]).read_bytes()
    # Make the second entry claim 10 bytes in both headers; it really holds 2048.
    name_at = data.rfind(b"cat/z.png", 0, data.find(b"PK\x01\x02"))
    local_at = data.rfind(b"PK\x03\x04", 0, name_at)
    buffer = bytearray(data)
    struct.pack_into("<L", buffer, local_at + 22, 10)
    central_at = data.rfind(b"PK\x01\x02")
    struct.pack_into("<L", buffer, central_at + 24, 10)
    (tmp_path / "liar.zip").write_bytes(bytes(buffer))
    with pytest.raises(DataError):
        extract_zip(tmp_path / "liar.zip", target)
    assert_nothing_written(outer, target)


def test_not_a_zip_and_corrupt_zip_are_clear_errors(sandbox, tmp_path):
    outer, target = sandbox
    text = tmp_path / "data.zip"
    text.write_text("not a zip at all")
    with pytest.raises(DataError, match=r"is not a valid \.zip .*re-create it"):
        extract_zip(text, target)
    good = zip_folder(make_image_folder(tmp_path / "d"), tmp_path / "good.zip")
    cut = tmp_path / "cut.zip"
    cut.write_bytes(good.read_bytes()[:-30])
    with pytest.raises(DataError, match="not a valid"):
        extract_zip(cut, target)
    with pytest.raises(DataError, match=r"neither a folder nor a \.zip/\.tar"):
        extract_archive(text, target)
    assert_nothing_written(outer, target)


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


def test_nested_archives_are_kept_as_files_not_unpacked(tmp_path):
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as nested:
        nested.writestr("../../escape.png", PNG)
    archive = make_zip(
        tmp_path / "outer.zip", [("cat/a.png", PNG), ("cat/more.zip", inner.getvalue())]
    )
    root = extract_zip(archive, tmp_path / "out")
    assert root == (tmp_path / "out").resolve()  # one class folder is not a dataset root
    assert files_under(root) == {"cat/a.png", "cat/more.zip"}
    assert not list(tmp_path.rglob("escape.png"))


def test_check_zip_entries_lists_a_valid_keras_like_zip(tmp_path):
    archive = make_zip(
        tmp_path / "model.keras", [("config.json", b"{}"), ("model.weights.h5", PNG)]
    )
    names = [info.filename for info in check_zip_entries(archive)]
    assert names == ["config.json", "model.weights.h5"]


def make_tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]], mode="w:gz"):
    with tarfile.open(path, mode) as archive:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            archive.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


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


@pytest.mark.parametrize(
    ("member", "message"),
    [
        ("../evil.png", "outside"),
        ("/tmp/evil.png", "absolute"),
        ("cat\\..\\..\\evil.png", "backslash"),
    ],
)
def test_tar_with_unsafe_paths_is_refused(sandbox, tmp_path, member, message):
    outer, target = sandbox
    archive = make_tar(
        tmp_path / "bad.tgz",
        [(tarfile.TarInfo("cat/a.png"), PNG), (tarfile.TarInfo(member), PNG)],
    )
    with pytest.raises(UnsafeArchiveError, match=message):
        extract_archive(archive, target)
    assert_nothing_written(outer, target)
    assert not (tmp_path / "evil.png").exists()


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.CHRTYPE])
def test_tar_links_and_devices_are_refused(sandbox, tmp_path, kind):
    outer, target = sandbox
    link = tarfile.TarInfo("cat/link.png")
    link.type = kind
    link.linkname = "/etc/passwd"
    archive = make_tar(
        tmp_path / "links.tar", [(tarfile.TarInfo("cat/a.png"), PNG), (link, None)], "w"
    )
    with pytest.raises(UnsafeArchiveError, match=r"link|device"):
        extract_tar(archive, target)
    assert_nothing_written(outer, target)


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
