"""Find the images of a dataset and their labels from its folder layout, deterministically.

Two layouts, as people already store them (and as Keras' ``image_dataset_from_directory``
reads them): ``root/<class>/...`` and ``root/{train,val,test}/<class>/...``. Everything not
used is accounted for (ignored clutter, skipped files with a reason), so the audit can tell
the user why an image they expected is missing.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import unicodedata
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from training.data.archive import (
    JUNK_DIRS,
    JUNK_FILES,
    ArchiveLimits,
    archive_kind,
    extract_archive,
)
from training.data.images import IMAGE_EXTENSIONS
from training.errors import DataError

IGNORED_NAMES: frozenset[str] = JUNK_FILES | JUNK_DIRS
"""Lowercase names skipped silently (besides hidden ``.*`` and ``._*`` files)."""
SPLIT_ALIASES: dict[str, str] = {
    "train": "train",
    "val": "val",
    "validation": "val",
    "valid": "val",
    "test": "test",
}
"""Split folder names (compared case-insensitively) and the split they mean."""
SPLIT_ORDER: tuple[str, ...] = ("train", "val", "test")
ARCHIVE_EXTENSIONS: frozenset[str] = frozenset(
    {".zip", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar"}
)
COMPLETE_MARKER = ".complete"
_COPY = "copy the files themselves into the dataset folder"


@dataclass(frozen=True)
class ScannedFile:
    """One image file: where it is, its path relative to the root, its class and split."""

    path: Path
    rel: str
    label: str
    split: str | None


@dataclass
class ScannedDataset:
    """What a dataset folder holds; ``classes`` only lists classes with at least one image."""

    root: Path
    layout: str
    files: list[ScannedFile]
    classes: list[str]
    splits: list[str]
    ignored: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    empty_classes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _nfc(name: str) -> str:
    return unicodedata.normalize("NFC", name)


def _is_ignored(name: str) -> bool:
    return name.startswith(".") or name.lower() in IGNORED_NAMES


def _entries(folder: Path) -> list[os.DirEntry]:
    try:
        with os.scandir(folder) as it:
            return sorted(it, key=lambda e: e.name)
    except OSError as exc:
        raise DataError(f"{folder}: cannot list the folder ({exc}); check permissions.") from None


class _Walker:
    """Collects files under the root, keeping symlinks from leading outside it."""

    def __init__(self, root: Path):
        self.root = root
        self.real_root = root.resolve()
        self.ignored: list[str] = []
        self.skipped: list[tuple[str, str]] = []

    def rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def _inside(self, entry: os.DirEntry) -> bool:
        try:
            return Path(entry.path).resolve().is_relative_to(self.real_root)
        except (OSError, RuntimeError):  # RuntimeError: a symlink loop
            return False

    def children(self, folder: Path) -> tuple[list[Path], list[Path]]:
        """Usable (sub-folders, files) of one folder; records what it leaves out and why."""
        dirs: list[Path] = []
        files: list[Path] = []
        for entry in _entries(folder):
            path = Path(entry.path)
            if _is_ignored(entry.name):
                self.ignored.append(self.rel(path))
                continue
            if entry.is_symlink():
                if not self._inside(entry):
                    self.skipped.append(
                        (self.rel(path), f"symlink pointing outside the dataset; {_COPY}")
                    )
                    continue
                if entry.is_dir():
                    self.skipped.append(
                        (self.rel(path), f"symlinked folder, not followed; {_COPY}")
                    )
                    continue
            if entry.is_dir():
                dirs.append(path)
            elif entry.is_file():
                files.append(path)
            else:
                what = (
                    "broken symlink (its target is missing)"
                    if entry.is_symlink()
                    else "not a regular file (a pipe, socket or device)"
                )
                self.skipped.append((self.rel(path), f"{what}; remove it"))
        return dirs, files

    def images(self, folder: Path) -> list[Path]:
        """Image files anywhere under ``folder``; others are skipped with a reason."""
        dirs, files = self.children(folder)
        found = []
        for path in files:
            suffix = path.suffix.lower()
            if suffix in IMAGE_EXTENSIONS:
                found.append(path)
            elif suffix in ARCHIVE_EXTENSIONS:
                self.skipped.append(
                    (self.rel(path), "nested archive, not unpacked; unpack it into the folder")
                )
            else:
                self.skipped.append(
                    (
                        self.rel(path),
                        f"not an image file extension ({suffix or 'none'}); images must be JPEG, "
                        f"PNG, GIF, BMP, WebP or TIFF files",
                    )
                )
        for sub in dirs:
            found.extend(self.images(sub))
        return found

    def skip_loose(self, files: list[Path], where: str) -> None:
        for path in files:
            self.skipped.append((self.rel(path), f"not inside a class folder ({where})"))


def _classes_in(
    walker: _Walker, dirs: list[Path], split: str | None
) -> tuple[list[ScannedFile], list[str]]:
    """Files of every class folder in ``dirs``, and the names of empty class folders."""
    files, empty = [], []
    for class_dir in dirs:
        label = _nfc(class_dir.name)
        images = walker.images(class_dir)
        if not images:
            empty.append(label)
        files.extend(ScannedFile(p, walker.rel(p), label, split) for p in images)
    return files, empty


def _split_dirs(dirs: list[Path]) -> dict[Path, str] | None:
    """Split folders by path if the root looks like a splits layout, else None."""
    named = {d: SPLIT_ALIASES[d.name.lower()] for d in dirs if d.name.lower() in SPLIT_ALIASES}
    if "train" in named.values():
        return named
    if named and len(named) == len(dirs):
        found = ", ".join(sorted(d.name for d in named))
        raise DataError(
            f"Found split folders ({found}) but no train folder; add a train/ folder with one "
            f"sub-folder per class, or put the class folders directly in the dataset folder."
        )
    return None


def scan_dataset(root: Path) -> ScannedDataset:
    """List a dataset folder's images with labels (and splits), in a deterministic order.

    Args:
        root: ``root/<class>/...`` or ``root/{train,val,test}/<class>/...``.

    Raises:
        DataError: The path is missing, not a folder, or has val/test folders but no train.
    """
    root = Path(root)
    if not root.exists():
        raise DataError(f"Dataset not found: {root}; check the path.")
    if not root.is_dir():
        raise DataError(f"Expected a dataset folder. Received a file: {root}.")
    walker = _Walker(root)
    dirs, loose = walker.children(root)
    splits_map = _split_dirs(dirs)
    files: list[ScannedFile] = []
    empty: set[str] = set()
    if splits_map is None:
        layout = "classes"
        walker.skip_loose(loose, "put images in one sub-folder per class")
        files, empty_list = _classes_in(walker, dirs, None)
        empty.update(empty_list)
    else:
        layout = "splits"
        walker.skip_loose(loose, "put images in <split>/<class>/ folders")
        for folder in dirs:
            if folder not in splits_map:
                walker.skipped.append(
                    (walker.rel(folder), "not a split folder (train, val or test)")
                )
                continue
            class_dirs, split_loose = walker.children(folder)
            walker.skip_loose(split_loose, "put images in <split>/<class>/ folders")
            split_files, empty_list = _classes_in(walker, class_dirs, splits_map[folder])
            files.extend(split_files)
            empty.update(empty_list)
    files.sort(key=lambda f: f.rel)
    classes = sorted({f.label for f in files})
    return ScannedDataset(
        root=root,
        layout=layout,
        files=files,
        classes=classes,
        splits=[s for s in SPLIT_ORDER if any(f.split == s for f in files)]
        if layout == "splits"
        else [],
        ignored=sorted(walker.ignored),
        skipped=sorted(walker.skipped),
        empty_classes=sorted(empty - set(classes)),
    )


def classes_missing(items: Iterable, split: str) -> dict[str, list[str]]:
    """Each class of ``items`` (anything with ``label`` and ``split``: scanned files, audit
    records) that has none in ``split``, with the splits it does have: the audit refuses a class
    no training image teaches and warns about one no validation image measures."""
    where: dict[str, set[str]] = {}
    for item in items:
        where.setdefault(item.label, set()).add(item.split or "")
    order = {name: rank for rank, name in enumerate(SPLIT_ORDER)}
    return {
        label: sorted(splits, key=lambda s: order.get(s, len(order)))
        for label, splits in sorted(where.items())
        if split not in splits
    }


def _digest(path: Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as fp:
        while chunk := fp.read(1 << 20):
            sha.update(chunk)
    return sha.hexdigest()[:16]


def resolve_dataset(data: Path, workdir: Path, limits: ArchiveLimits | None = None) -> Path:
    """The dataset folder for ``data``: the folder itself, or an archive unpacked once.

    Archives are unpacked into ``workdir/<sha256[:16] of the archive>``, so the same upload is
    unpacked once however often it is trained on; a ``.complete`` marker (holding the dataset
    root) is written last, and the folder only appears under its final name when complete.
    """
    data = Path(data)
    if data.is_dir():
        return data
    if not data.exists():
        raise DataError(f"Dataset not found: {data}; check the path.")
    if archive_kind(data) is None:
        raise DataError(
            f"{data} is neither a folder nor a .zip/.tar archive; point at a folder of class "
            f"sub-folders or a .zip of one."
        )
    workdir = Path(workdir)
    dest = workdir / _digest(data)
    marker = dest / COMPLETE_MARKER
    if marker.is_file():
        return dest / marker.read_text(encoding="utf-8").strip()
    if dest.exists():  # an earlier unpack was interrupted
        shutil.rmtree(dest, ignore_errors=True)
    workdir.mkdir(parents=True, exist_ok=True)
    temp = workdir / f".{dest.name}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        root = extract_archive(data, temp, limits)
        rel = root.relative_to(temp.resolve()).as_posix()
        (temp / COMPLETE_MARKER).write_text(rel + "\n", encoding="utf-8")
        try:
            temp.rename(dest)
        except OSError:  # another process finished first: use its copy
            if not (dest / COMPLETE_MARKER).is_file():
                raise
    finally:
        if temp.exists():
            shutil.rmtree(temp, ignore_errors=True)
    return dest / (dest / COMPLETE_MARKER).read_text(encoding="utf-8").strip()
