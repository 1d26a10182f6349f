"""Unpack a user's zip or tar without trusting it.

An uploaded archive is the one input that can write files: every entry is vetted before a
single byte is written (paths, links, sizes, compression ratio, overlapping entries), and the
extraction itself counts bytes because declared sizes can lie. Anything refused raises
:class:`~training.errors.UnsafeArchiveError` and leaves nothing behind in the target.

This module holds the safe unpacking of an untrusted archive (zip and tar share its
checks, so they stay together).
"""

from __future__ import annotations

import re
import shutil
import stat
import struct
import tarfile
import unicodedata
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from training.errors import ConfigError, DataError, UnsafeArchiveError

JUNK_DIRS: frozenset[str] = frozenset({"__macosx"})
"""Folder names (lowercase) that operating systems add to archives; never unpacked."""
JUNK_FILES: frozenset[str] = frozenset({".ds_store", "thumbs.db", "desktop.ini"})
"""File names (lowercase) that operating systems add to folders; never unpacked."""

_CHUNK = 1 << 20
_LOCAL_HEADER = struct.Struct("<4s5H3L2H")
_LOCAL_MAGIC = b"PK\x03\x04"
_DRIVE = re.compile(r"^[A-Za-z]:")
_REMAKE = (
    "re-create the archive from inside the dataset folder (e.g. `cd data && zip -r ../data.zip .`)"
)


@dataclass(frozen=True)
class ArchiveLimits:
    """What an archive may expand to; generous for image datasets, fatal for bombs.

    Attributes:
        max_total_bytes: Total uncompressed bytes of all entries.
        max_entries: Number of entries (files and folders).
        max_ratio: Uncompressed/compressed ratio, per entry and overall. Photos barely compress,
            so a high ratio means a bomb; small entries are exempt (see ``ratio_floor_bytes``).
        max_entry_bytes: Uncompressed bytes of any one entry.
        ratio_floor_bytes: Entries (and archives) smaller than this skip the ratio check: a flat
            1 MB BMP or a text file legitimately compresses 1000×, and cannot fill a disk.
    """

    max_total_bytes: int = 4 * 1024**3
    max_entries: int = 200_000
    max_ratio: float = 200.0
    max_entry_bytes: int = 256 * 1024**2
    ratio_floor_bytes: int = 1024**2

    def __post_init__(self) -> None:
        for name in ("max_total_bytes", "max_entries", "max_ratio", "max_entry_bytes"):
            if not getattr(self, name) > 0:
                raise ConfigError(
                    f"Expected ArchiveLimits.{name} > 0. Received: {name}={getattr(self, name)!r}"
                )


def is_junk(rel: str) -> bool:
    """True for OS clutter: __MACOSX/, ._*, .DS_Store, Thumbs.db, desktop.ini."""
    parts = [p for p in rel.replace("\\", "/").split("/") if p]
    if any(p.lower() in JUNK_DIRS for p in parts):
        return True
    name = parts[-1] if parts else ""
    return name.startswith("._") or name.lower() in JUNK_FILES


def _refusal(archive: Path, problem: str, fix: str) -> UnsafeArchiveError:
    """``Refused NAME: problem; fix.`` The problem alone is kept as ``error.problem`` for callers
    that vet other zips (``.keras`` files), whose fix is not a dataset's."""
    error = UnsafeArchiveError(f"Refused {archive.name}: {problem}; {fix}.")
    error.problem = problem
    return error


def _refuse(archive: Path, entry: str, problem: str, fix: str = _REMAKE) -> UnsafeArchiveError:
    return _refusal(archive, f"entry {entry!r} {problem}", fix)


def _is_self(name: str) -> bool:
    """The archive's own top folder (``.`` or ``./``), which ``tar -C data -czf x.tgz .`` adds."""
    return not [p for p in name.split("/") if p not in ("", ".")] and not name.startswith("/")


def _check_name(archive: Path, name: str) -> PurePosixPath:
    """A relative POSIX path that stays inside the target, or UnsafeArchiveError."""
    if any(unicodedata.category(c) == "Cc" for c in name):  # NUL, newline, tab, terminal escapes
        raise _refuse(
            archive,
            name,
            "has a control character (NUL, newline, tab, escape…) in its name",
            "rename it and re-create the archive",
        )
    if "\\" in name:
        raise _refuse(archive, name, "uses backslashes in its path (a Windows-made or crafted zip)")
    if name.startswith("/") or _DRIVE.match(name):
        raise _refuse(archive, name, "has an absolute path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise _refuse(archive, name, "points outside the folder it is unpacked into (../)")
    if not parts:
        raise _refuse(archive, name, "has an empty name")
    return PurePosixPath(*parts)


def _check_size(archive: Path, name: str, size: int, limits: ArchiveLimits) -> None:
    if size > limits.max_entry_bytes:
        raise _refuse(
            archive,
            name,
            f"would unpack to {size:,} bytes, over the {limits.max_entry_bytes:,} allowed per file",
            "remove or shrink that file, or raise ArchiveLimits.max_entry_bytes",
        )


def _open_zip(path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found; check the path.") from None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, OSError) as exc:
        error = DataError(
            f"{path} is not a valid .zip ({exc}); re-create it with `zip -r` or your file "
            f"manager's 'Compress' command."
        )
        error.problem = f"not a valid zip ({exc})"
        raise error from None


def _check_overlaps(archive: Path, zf: zipfile.ZipFile, infos: list[zipfile.ZipInfo]) -> None:
    """Refuse entries whose data share bytes: the trick behind non-recursive zip bombs."""
    fp: BinaryIO = zf.fp  # type: ignore[assignment]
    end_of_data = getattr(zf, "start_dir", None)
    previous_end, previous_name = 0, ""
    for info in sorted(infos, key=lambda i: i.header_offset):
        if info.header_offset < previous_end:
            raise _refuse(
                archive,
                info.filename,
                f"overlaps the data of entry {previous_name!r} (an overlapping-entry zip bomb)",
                "do not use this file; re-create the archive with a standard zip tool",
            )
        fp.seek(info.header_offset)
        header = fp.read(_LOCAL_HEADER.size)
        if len(header) != _LOCAL_HEADER.size or header[:4] != _LOCAL_MAGIC:
            raise _refuse(archive, info.filename, "has no valid local header (corrupt zip)")
        fields = _LOCAL_HEADER.unpack(header)
        name_len, extra_len = fields[-2], fields[-1]
        previous_end = (
            info.header_offset + _LOCAL_HEADER.size + name_len + extra_len + info.compress_size
        )
        previous_name = info.filename
        if end_of_data is not None and previous_end > end_of_data:
            raise _refuse(archive, info.filename, "has data running into the zip's directory")


def check_zip_entries(
    path: str | Path, limits: ArchiveLimits | None = None
) -> list[zipfile.ZipInfo]:
    """Vet every entry of a zip without writing anything; also used on ``.keras`` files.

    Args:
        path: The zip file.
        limits: Size, count and ratio limits; defaults to ``ArchiveLimits()``.

    Returns:
        All entries, in archive order.

    Raises:
        DataError: Not a readable zip.
        UnsafeArchiveError: Any entry that could escape the target, a link, an encrypted entry,
            too many entries, sizes or ratios over the limits, or overlapping entries.
    """
    path, limits = Path(path), limits or ArchiveLimits()
    with _open_zip(path) as zf:
        infos = zf.infolist()
        if len(infos) > limits.max_entries:
            raise _refusal(
                path,
                f"{len(infos):,} entries, over the limit of {limits.max_entries:,}",
                "split the dataset or raise ArchiveLimits.max_entries",
            )
        total = compressed = 0
        seen: dict[PurePosixPath, str] = {}
        for info in infos:
            rel = _check_name(path, info.orig_filename)
            if not info.is_dir():
                if rel in seen:  # a viewer shows one of the two, an unpacker keeps the other
                    raise _refuse(path, info.filename, f"has the same path as entry {seen[rel]!r}")
                seen[rel] = info.filename
            if stat.S_ISLNK(info.external_attr >> 16):
                raise _refuse(path, info.filename, "is a symbolic link", "replace links by files")
            if info.flag_bits & 0x1:
                raise _refuse(path, info.filename, "is encrypted", "zip it again without password")
            _check_size(path, info.filename, info.file_size, limits)
            if (
                info.file_size >= limits.ratio_floor_bytes
                and info.file_size > limits.max_ratio * max(info.compress_size, 1)
            ):
                ratio = info.file_size / max(info.compress_size, 1)
                raise _refuse(
                    path,
                    info.filename,
                    f"expands {ratio:,.0f}× (limit {limits.max_ratio:g}×), like a zip bomb",
                    "remove that file, or raise ArchiveLimits.max_ratio if it is genuine",
                )
            total += info.file_size
            compressed += info.compress_size
        _check_total(path, total, compressed, limits)
        _check_overlaps(path, zf, infos)
    return infos


def _check_total(path: Path, total: int, compressed: int, limits: ArchiveLimits) -> None:
    if total > limits.max_total_bytes:
        raise _refusal(
            path,
            f"it would unpack to {total:,} bytes, over the limit of {limits.max_total_bytes:,}",
            "use a smaller dataset or raise ArchiveLimits.max_total_bytes",
        )
    if total >= limits.ratio_floor_bytes and total > limits.max_ratio * max(compressed, 1):
        raise _refusal(
            path,
            f"it expands {total / max(compressed, 1):,.0f}× overall (limit "
            f"{limits.max_ratio:g}×), like a compression bomb",
            "re-create it from real image files",
        )


class _Writer:
    """Writes entries under one folder, counting bytes, and can undo everything it wrote."""

    def __init__(self, archive: Path, target: Path, limits: ArchiveLimits):
        self.archive, self.limits = archive, limits
        target.mkdir(parents=True, exist_ok=True)
        self.root = target.resolve()
        self.created: list[Path] = []
        self.total = 0
        self.files = 0
        self.top: set[str] = set()
        self.top_files: set[str] = set()

    def _dest(self, rel: PurePosixPath) -> Path:
        dest = self.root.joinpath(*rel.parts)
        if not dest.resolve().is_relative_to(self.root):
            raise _refuse(self.archive, str(rel), "resolves outside the target folder")
        return dest

    def _mkdirs(self, folder: Path) -> None:
        missing = []
        while not folder.exists():
            missing.append(folder)
            folder = folder.parent
        for path in reversed(missing):
            path.mkdir()
            self.created.append(path)

    def directory(self, rel: PurePosixPath) -> None:
        self.top.add(rel.parts[0])
        self._mkdirs(self._dest(rel))

    def file(self, rel: PurePosixPath, source: BinaryIO, declared: int) -> None:
        self.top.add(rel.parts[0])
        if len(rel.parts) == 1:
            self.top_files.add(rel.parts[0])
        dest = self._dest(rel)
        self._mkdirs(dest.parent)
        if dest.is_dir() or dest.is_symlink():
            raise _refuse(self.archive, str(rel), "collides with a folder or link already there")
        written = 0
        self.files += 1
        with open(dest, "wb") as out:
            self.created.append(dest)
            while chunk := source.read(_CHUNK):
                written += len(chunk)
                self.total += len(chunk)
                if written > declared or written > self.limits.max_entry_bytes:
                    raise _refuse(
                        self.archive,
                        str(rel),
                        f"holds more data than the {declared:,} bytes it declares (a forged zip)",
                        "do not use this file",
                    )
                if self.total > self.limits.max_total_bytes:
                    raise _refuse(
                        self.archive,
                        str(rel),
                        f"takes the unpacked total over {self.limits.max_total_bytes:,} bytes",
                        "use a smaller dataset or raise ArchiveLimits.max_total_bytes",
                    )
                out.write(chunk)

    def undo(self) -> None:
        for path in reversed(self.created):
            try:
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
            except OSError:
                pass

    def dataset_root(self) -> Path:
        """The single top-level folder if that is all there is and it holds folders, else target.

        ``data/cat/*.jpg`` unpacks to root ``data``; ``cat/*.jpg`` alone stays at the target, so
        a one-class upload is reported as one class rather than as loose files.
        """
        if len(self.top) == 1 and not self.top_files:
            only = self.root / next(iter(self.top))
            if only.is_dir() and any(p.is_dir() for p in only.iterdir()):
                return only
        return self.root


def _write_all(writer: _Writer, entries: Iterator[None]) -> Path:
    """Drive the entry writes; on any failure remove what was written and re-raise clearly."""
    try:
        for _ in entries:
            pass
    except UnsafeArchiveError:
        writer.undo()
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, tarfile.TarError, OSError) as exc:
        writer.undo()
        if isinstance(exc, OSError) and exc.errno is not None:  # the disk, not the archive
            raise DataError(
                f"Could not unpack {writer.archive.name} into {writer.root} ({exc}); check free "
                f"disk space and permissions, or whether the archive has a file and a folder "
                f"with the same name."
            ) from None
        raise DataError(
            f"{writer.archive} is corrupt ({exc}); re-create it and upload it again."
        ) from None
    except BaseException:
        writer.undo()
        raise
    if not writer.files:  # else the audit would blame an empty folder deep in the home
        writer.undo()
        raise DataError(
            f"{writer.archive.name} holds no files (only folders or OS clutter, if anything); zip "
            f"the dataset folder again, with its class sub-folders and their images."
        )
    return writer.dataset_root()


def extract_zip(zip_path: str | Path, target: Path, limits: ArchiveLimits | None = None) -> Path:
    """Vet, then unpack a zip into ``target``; returns the dataset root inside it.

    Nested archives are kept as plain files and OS clutter is skipped. The root is ``target``
    or, when the zip holds exactly one top-level folder, that folder.
    """
    zip_path, limits = Path(zip_path), limits or ArchiveLimits()
    infos = check_zip_entries(zip_path, limits)
    writer = _Writer(zip_path, Path(target), limits)

    def entries() -> Iterator[None]:
        with _open_zip(zip_path) as zf:
            for info in infos:
                if is_junk(info.filename):
                    continue
                rel = _check_name(zip_path, info.orig_filename)
                if info.is_dir():
                    writer.directory(rel)
                else:
                    with zf.open(info) as source:
                        writer.file(rel, source, info.file_size)
                yield None

    return _write_all(writer, entries())


def _tar_members(path: Path, tf: tarfile.TarFile, limits: ArchiveLimits) -> list[tarfile.TarInfo]:
    """Vet every member (count, names, type, sizes) before anything is written."""
    members: list[tarfile.TarInfo] = []
    total = 0
    for member in tf:
        members.append(member)
        if len(members) > limits.max_entries:
            raise UnsafeArchiveError(
                f"Refused {path.name}: more than {limits.max_entries:,} entries; split the "
                f"dataset or raise ArchiveLimits.max_entries."
            )
        if member.isdir() and _is_self(member.name):
            continue
        _check_name(path, member.name)
        if member.issym() or member.islnk():
            raise _refuse(path, member.name, "is a link", "replace links by the files themselves")
        if not (member.isfile() or member.isdir()):
            raise _refuse(path, member.name, "is a device, pipe or other special file")
        _check_size(path, member.name, member.size, limits)
        total += member.size
    _check_total(path, total, path.stat().st_size, limits)
    return members


def extract_tar(tar_path: str | Path, target: Path, limits: ArchiveLimits | None = None) -> Path:
    """Vet, then unpack a tar (plain, gz, bz2, xz) into ``target``; returns the dataset root."""
    tar_path, limits = Path(tar_path), limits or ArchiveLimits()
    try:
        tf = tarfile.open(tar_path, "r:*")  # noqa: SIM115 - closed by the `with tf` below
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{tar_path} is not a valid tar archive ({exc}); re-create it.") from None
    with tf:
        try:
            members = _tar_members(tar_path, tf, limits)
        except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
            raise DataError(f"{tar_path} is corrupt ({exc}); re-create it.") from None
        writer = _Writer(tar_path, Path(target), limits)

        def entries() -> Iterator[None]:
            for member in members:
                if is_junk(member.name) or (member.isdir() and _is_self(member.name)):
                    continue
                try:  # the standard "data" filter: the same rules, as a second opinion
                    member = tarfile.data_filter(member, str(writer.root))
                except tarfile.FilterError as exc:
                    raise _refuse(tar_path, member.name, f"is unsafe ({exc})") from None
                rel = _check_name(tar_path, member.name)
                if member.isdir():
                    writer.directory(rel)
                else:
                    source = tf.extractfile(member)
                    if source is None:
                        raise _refuse(tar_path, member.name, "has no readable data")
                    with source:
                        writer.file(rel, source, member.size)
                yield None

        return _write_all(writer, entries())


def archive_kind(path: str | Path) -> str | None:
    """'zip', 'tar' or None, from the file's content (not its name)."""
    path = Path(path)
    if not path.is_file():
        return None
    with open(path, "rb") as fp:
        magic = fp.read(4)
    if magic in (_LOCAL_MAGIC, b"PK\x05\x06"):
        return "zip"
    try:
        return "tar" if tarfile.is_tarfile(path) else None
    except (OSError, EOFError, zlib.error):
        return None


def extract_archive(path: str | Path, target: Path, limits: ArchiveLimits | None = None) -> Path:
    """Unpack a zip or tar (chosen by content) safely into ``target``; returns the dataset root."""
    path = Path(path)
    kind = archive_kind(path)
    if kind == "zip":
        return extract_zip(path, target, limits)
    if kind == "tar":
        return extract_tar(path, target, limits)
    if not path.exists():
        raise DataError(f"{path}: file not found; check the path.")
    raise DataError(
        f"{path} is neither a folder nor a .zip/.tar archive; point at a folder of class "
        f"sub-folders or a .zip of one."
    )
