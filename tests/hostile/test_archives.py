"""Hostile archives given to ``audit`` and ``train``: refused before a byte is written, or
unpacked safely into ``$BABYSITTER_HOME``; nothing outside the home changes, no run is recorded.

The unit tests of the vetting itself (custom limits, clutter, layouts) are in
``tests/test_archive.py``; these are the same attacks as a user meets them, through the CLI.
"""

from __future__ import annotations

import io
import stat
import struct
import tarfile
import warnings
import zipfile
import zlib
from pathlib import Path

import pytest

from tests.hostile.conftest import snapshot
from tests.imagegen import class_image, make_image_folder, make_tar, zip_folder
from training.store import RunStore

FIX = "re-create the archive from inside the dataset folder"


def png(seed: int, class_index: int = 0) -> bytes:
    """A real 16 px PNG, distinct per seed, so the rest of the audit has images to judge."""
    buffer = io.BytesIO()
    class_image(class_index, seed).save(buffer, "PNG")
    return buffer.getvalue()


GOOD = [
    ("cat/a.png", png(1)),
    ("cat/b.png", png(2)),
    ("dog/c.png", png(3, 1)),
    ("dog/d.png", png(4, 1)),
]


def make_zip(path: Path, entries: list, method: int = zipfile.ZIP_DEFLATED) -> Path:
    with warnings.catch_warnings():  # zipfile warns about the duplicate names we write on purpose
        warnings.simplefilter("ignore")
        with zipfile.ZipFile(path, "w", method) as archive:
            for name, data in entries:
                archive.writestr(name, data)
    return path


def outside_home(root: Path) -> dict[str, str]:
    """Everything under ``root`` but the home, which the conftest places at ``root/home``."""
    return {k: v for k, v in snapshot(root).items() if k != "home" and not k.startswith("home/")}


def unpacked(home: Path) -> list[Path]:
    """What is left in the home's unpacked-datasets folder."""
    datasets = home / "datasets"
    return sorted(datasets.iterdir()) if datasets.exists() else []


@pytest.fixture
def refuses(cli, tmp_path, babysitter_home):
    """``audit`` the archive: the exit code, every phrase in the message, and nothing written."""

    def check(archive: Path, code: int, *phrases: str, command: tuple = ("audit",)) -> str:
        before = outside_home(tmp_path)
        outcome = cli(*command, archive)
        assert outcome.code == code, outcome.err
        for phrase in phrases:
            assert phrase in outcome.err
        assert outcome.err.startswith("error: ") and outcome.err.count("\n") == 1
        assert outside_home(tmp_path) == before
        assert unpacked(babysitter_home) == []
        assert RunStore().list_runs() == []
        return outcome.err

    return check


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("../evil.png", "points outside the folder it is unpacked into (../)"),
        ("cat/../../evil.png", "points outside the folder it is unpacked into (../)"),
        ("../../../evil.png", "points outside the folder it is unpacked into (../)"),
        ("/tmp/{unique}-evil.png", "has an absolute path"),
        ("C:/evil.png", "has an absolute path"),
        ("cat\\..\\..\\evil.png", "uses backslashes in its path"),
    ],
)
def test_zip_slip_entries_are_refused_before_writing(refuses, tmp_path, name, problem):
    """One bad entry among good ones: nothing at all is unpacked, not even the good ones."""
    name = name.format(unique=tmp_path.name)
    archive = make_zip(tmp_path / "bad.zip", [*GOOD, (name, png(9))])
    refuses(archive, 1, f"Refused bad.zip: entry {name!r} {problem}", FIX)
    assert not list(tmp_path.parent.glob("*evil.png"))
    assert not Path(f"/tmp/{tmp_path.name}-evil.png").exists()


def test_symlink_entries_are_refused(refuses, tmp_path):
    """A link entry would let a later entry write through it, anywhere."""
    link = zipfile.ZipInfo("cat/passwd.png")
    link.create_system = 3
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    archive = make_zip(tmp_path / "link.zip", [*GOOD, (link, b"/etc/passwd")])
    refuses(archive, 1, "entry 'cat/passwd.png' is a symbolic link; replace links by files")


def test_a_high_ratio_zip_bomb_is_refused(refuses, tmp_path):
    """Photos barely compress: 2 MB that deflate to 2 KB is a bomb, refused from the directory."""
    archive = make_zip(tmp_path / "zeros.zip", [*GOOD, ("cat/zeros.png", bytes(2 * 1024**2))])
    refuses(archive, 1, "entry 'cat/zeros.png' expands", "(limit 200×), like a zip bomb")


def test_a_huge_declared_size_is_refused_before_reading_any_data(refuses, tmp_path):
    """The directory says 300 MB for one file: over the per-file limit, refused unread."""
    data = bytearray(make_zip(tmp_path / "x.zip", [*GOOD, ("cat/huge.png", png(9))]).read_bytes())
    central = data.rfind(b"PK\x01\x02")  # the last entry's directory record
    struct.pack_into("<L", data, central + 24, 300 * 1024**2)  # uncompressed size
    struct.pack_into("<L", data, central + 20, 2 * 1024**2)  # compressed: a plausible ratio
    (tmp_path / "huge.zip").write_bytes(bytes(data))
    refuses(
        tmp_path / "huge.zip",
        1,
        "entry 'cat/huge.png' would unpack to 314,572,800 bytes, over the 268,435,456 allowed",
        "remove or shrink that file",
    )


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


def test_an_overlapping_entry_zip_bomb_is_refused(refuses, tmp_path):
    """Every entry reuses one blob: each ratio looks innocent, the total does not."""
    archive = overlapping_zip(tmp_path / "overlap.zip", [f"cat/{i}.png" for i in range(50)], b"x")
    refuses(archive, 1, "overlaps the data of entry 'cat/0.png' (an overlapping-entry zip bomb)")


def test_too_many_entries_are_refused(refuses, tmp_path):
    """200,001 one-byte entries (the real limit is 200,000), all sharing one local header."""
    local_name = b"c/0"
    local = struct.pack(
        "<4s5H3L2H", b"PK\x03\x04", 20, 0, 0, 0, 0, zlib.crc32(b"x"), 1, 1, len(local_name), 0
    )
    record = struct.Struct("<4s6H3L5H2L")
    central = b"".join(
        record.pack(
            b"PK\x01\x02", 20, 20, 0, 0, 0, 0, zlib.crc32(b"x"), 1, 1, len(raw), 0, 0, 0, 0, 0, 0
        )
        + raw
        for raw in (f"c/{i}".encode() for i in range(200_001))
    )
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, len(central), 0, 0)
    (tmp_path / "many.zip").write_bytes(local + local_name + b"x" + central + end)
    refuses(tmp_path / "many.zip", 1, "200,001 entries, over the limit of 200,000")


def _patch_all(data: bytes, signature: bytes, offset: int, value: int) -> bytes:
    buffer = bytearray(data)
    start = 0
    while (start := buffer.find(signature, start)) >= 0:
        struct.pack_into("<H", buffer, start + offset, value)
        start += 4
    return bytes(buffer)


def test_encrypted_entries_are_refused(refuses, tmp_path):
    """No password prompt and no half-read files: an encrypted entry is refused by name."""
    data = make_zip(tmp_path / "plain.zip", GOOD).read_bytes()
    data = _patch_all(_patch_all(data, b"PK\x03\x04", 6, 1), b"PK\x01\x02", 8, 1)
    (tmp_path / "locked.zip").write_bytes(data)
    refuses(tmp_path / "locked.zip", 1, "entry 'cat/a.png' is encrypted; zip it again without")


def test_an_entry_holding_more_than_it_declares_is_undone(refuses, tmp_path):
    """Declared sizes can lie; the extraction counts bytes and removes what it wrote."""
    liar = bytes(range(256)) * 8
    data = make_zip(tmp_path / "ok.zip", [*GOOD, ("cat/z.png", liar)]).read_bytes()
    name_at = data.rfind(b"cat/z.png", 0, data.find(b"PK\x01\x02"))
    buffer = bytearray(data)  # the last entry claims 10 bytes in both headers; it holds 2048
    struct.pack_into("<L", buffer, data.rfind(b"PK\x03\x04", 0, name_at) + 22, 10)
    struct.pack_into("<L", buffer, data.rfind(b"PK\x01\x02") + 24, 10)
    (tmp_path / "liar.zip").write_bytes(bytes(buffer))
    refuses(tmp_path / "liar.zip", 1, "liar.zip is corrupt", "re-create it and upload it again")


def test_corrupt_entry_data_is_undone(refuses, tmp_path):
    """A flipped byte inside the last entry fails its CRC after the first three were written."""
    data = bytearray(make_zip(tmp_path / "ok.zip", GOOD, zipfile.ZIP_STORED).read_bytes())
    data[data.rfind(b"IDAT") + 8] ^= 0xFF  # inside dog/d.png's stored bytes
    (tmp_path / "flipped.zip").write_bytes(bytes(data))
    refuses(tmp_path / "flipped.zip", 1, "flipped.zip is corrupt (Bad CRC-32", "re-create it")


@pytest.mark.parametrize(
    "content",
    [b"hello, this is a text file", png(1), b""],
    ids=["text", "png", "zero-bytes"],
)
def test_a_file_that_is_not_an_archive_is_refused(refuses, tmp_path, content):
    """The suffix says .zip, the content does not: decided by content, one message."""
    (tmp_path / "data.zip").write_bytes(content)
    refuses(
        tmp_path / "data.zip",
        1,
        "data.zip is neither a folder nor a .zip/.tar archive",
        "point at a folder of class sub-folders or a .zip of one",
    )


@pytest.mark.parametrize(
    "entries",
    [[], [("__MACOSX/._a.png", b"junk"), (".DS_Store", b"junk")]],
    ids=["no-entries", "only-os-clutter"],
)
def test_an_empty_zip_is_refused_naming_it(refuses, tmp_path, entries):
    """An empty upload is the zip's problem, not an 'empty dataset' in a folder of the home."""
    archive = make_zip(tmp_path / "empty.zip", entries)
    refuses(archive, 1, "empty.zip holds no files", "zip the dataset folder again")


@pytest.mark.parametrize("cut", ["tail", "half"])
def test_a_truncated_zip_is_refused(refuses, tmp_path, cut):
    """An interrupted upload or download: the directory at the end is missing."""
    data = zip_folder(make_image_folder(tmp_path / "d"), tmp_path / "good.zip").read_bytes()
    (tmp_path / "cut.zip").write_bytes(data[:-30] if cut == "tail" else data[: len(data) // 2])
    refuses(tmp_path / "cut.zip", 1, "cut.zip is not a valid .zip", "re-create it with `zip -r`")


def test_a_nested_zip_is_kept_as_a_file_and_skipped(cli, tmp_path, babysitter_home):
    """A zip inside the zip is never unpacked, so its own ``../`` entry never runs."""
    inner = make_zip(tmp_path / "inner.zip", [("../../escape.png", png(9))]).read_bytes()
    archive = make_zip(tmp_path / "outer.zip", [*GOOD, ("cat/more.zip", inner)])
    before = outside_home(tmp_path)
    outcome = cli("audit", archive)
    assert outcome.code == 0
    assert "cat/more.zip: nested archive, not unpacked; unpack it into the folder" in outcome.out
    assert "4 image file(s), 4 readable" in outcome.out
    assert outside_home(tmp_path) == before
    assert not list(babysitter_home.parent.parent.rglob("escape.png"))


def test_duplicate_entry_names_are_refused(refuses, tmp_path):
    """Two entries with one name: a viewer shows the first, an unpacker keeps the last."""
    archive = make_zip(tmp_path / "dup.zip", [*GOOD, ("cat/./a.png", b"not the same image")])
    refuses(archive, 1, "entry 'cat/./a.png' has the same path as entry 'cat/a.png'", FIX)


@pytest.mark.parametrize(
    "name", ["cat/a\x1b[2J.png", "ca\nt/e.png", "cat/tab\t.png"], ids=["escape", "newline", "tab"]
)
def test_entry_names_with_control_characters_are_refused(refuses, tmp_path, name):
    """A terminal escape in a name would be printed by every report; shown escaped, refused."""
    archive = make_zip(tmp_path / "ctrl.zip", [*GOOD, (name, png(9))])
    err = refuses(archive, 1, f"entry {name!r} has a control character", "rename it")
    assert "\x1b" not in err and "\t" not in err


@pytest.mark.parametrize("top_level", ["data", None], ids=["in-one-folder", "bare"])
def test_a_zip_with_one_class_is_untrainable(cli, tmp_path, top_level):
    """``data/cat/*`` or ``cat/*`` alone: one class, said as such (exit 2), not unpacked wrong."""
    folder = make_image_folder(tmp_path / "one", {"cat": 3})
    archive = zip_folder(folder, tmp_path / "one.zip", top_level=top_level)
    before = outside_home(tmp_path)
    outcome = cli("audit", archive)
    assert outcome.code == 2
    assert "only one class ('cat') has readable images" in outcome.out
    assert "add one sub-folder of images per class" in outcome.out
    assert outside_home(tmp_path) == before


@pytest.mark.parametrize(
    ("member", "problem"),
    [
        ("../evil.png", "points outside the folder it is unpacked into (../)"),
        ("/tmp/{unique}-evil.png", "has an absolute path"),
        ("cat\\..\\..\\evil.png", "uses backslashes in its path"),
    ],
)
def test_tar_slip_members_are_refused(refuses, tmp_path, member, problem):
    """The same rules for tarballs, whatever their suffix."""
    member = member.format(unique=tmp_path.name)
    good = [(tarfile.TarInfo(name), data) for name, data in GOOD]
    archive = make_tar(tmp_path / "bad.tgz", [*good, (tarfile.TarInfo(member), png(9))])
    refuses(archive, 1, f"Refused bad.tgz: entry {member!r} {problem}")
    assert not list(tmp_path.parent.glob("*evil.png"))


@pytest.mark.parametrize(
    ("kind", "problem"),
    [
        (tarfile.SYMTYPE, "is a link"),
        (tarfile.LNKTYPE, "is a link"),
        (tarfile.CHRTYPE, "is a device, pipe or other special file"),
        (tarfile.FIFOTYPE, "is a device, pipe or other special file"),
    ],
    ids=["symlink", "hardlink", "device", "fifo"],
)
def test_tar_links_and_devices_are_refused(refuses, tmp_path, kind, problem):
    """A link or a device node in a dataset is an attack, not an image."""
    special = tarfile.TarInfo("cat/special.png")
    special.type = kind
    special.linkname = "/etc/passwd"
    good = [(tarfile.TarInfo(name), data) for name, data in GOOD]
    archive = make_tar(tmp_path / "links.tar", [*good, (special, None)], "w")
    refuses(archive, 1, f"entry 'cat/special.png' {problem}")


def test_train_on_a_hostile_zip_records_no_run(refuses, tmp_path):
    """``train`` refuses it as ``audit`` does, before any model or run exists."""
    archive = make_zip(tmp_path / "bad.zip", [*GOOD, ("../evil.png", png(9))])
    command = ("train", "--backbone", "VGG16", "--weights", "none", "--image-size", "32")
    refuses(archive, 1, "entry '../evil.png' points outside", command=command)
