"""Decode once: every readable image, resized, in one uint8 memmap per dataset content and size.

JPEG decoding is the main CPU cost of an input pipeline and a search reads the same images every
epoch of every trial, so each image is decoded and resized exactly once. The cache key is a hash
of (relative path, content hash, label) of every file plus the size and the decoder version: any
changed, added or removed file gives a new key, so a stale cache is never read. Building writes
to a temporary folder and renames it, so a killed build or a full disk leaves nothing
half-written behind; a folder found damaged anyway (a truncated images file, a broken manifest,
images that do not match the content digest in the manifest: zeroed, or another cache's) is
rebuilt, never mapped, and a line says so.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from training.atomic import remove, write_error
from training.data.images import load_rgb
from training.digest import content_digest

# Bump when decoding or resizing changes, so caches built by older code are not reused.
DECODER_VERSION = 1
IMAGES_FILE = "images.u8"
MANIFEST_FILE = "manifest.json"
# Each cache is <cache_root>/images-<key>/; the root is the store's cache_dir(), which the
# feature and audit caches share (their own prefixes), so this module names its folders itself.
PREFIX = "images-"


@dataclass
class ImageCache:
    """A decoded dataset: ``images[i]`` is ``rels[i]`` as (size, size, 3) uint8 RGB."""

    directory: Path
    key: str
    image_size: int
    images: np.ndarray
    labels: np.ndarray
    rels: list[str]
    splits: list[str | None]
    class_names: list[str]

    def __len__(self) -> int:
        return len(self.rels)

    def indices(self, rels: Sequence[str]) -> np.ndarray:
        """Row numbers of the given relative paths (for split lists)."""
        position = {rel: i for i, rel in enumerate(self.rels)}
        return np.array([position[rel] for rel in rels], dtype=np.int64)


def cache_key(records: Sequence, image_size: int, class_names: Sequence[str]) -> str:
    """Content key of a dataset at one size; ``records`` are readable audit FileRecords."""
    digest = hashlib.sha256()
    digest.update(f"v{DECODER_VERSION}|{image_size}|{json.dumps(list(class_names))}".encode())
    for record in sorted(records, key=lambda r: r.rel):
        digest.update(f"\n{record.rel}|{record.sha256}|{record.label}|{record.split}".encode())
    return digest.hexdigest()[:20]


def load_or_build_cache(
    records: Sequence,
    class_names: Sequence[str],
    image_size: int,
    cache_root: Path,
    workers: int | None = None,
    progress: bool = True,
    echo: Callable[[str], None] = print,
) -> ImageCache:
    """Open the cache for these records and size, decoding the images first if needed."""
    key = cache_key(records, image_size, class_names)
    directory = Path(cache_root) / f"{PREFIX}{key}"
    problem = cache_problem(directory) if directory.exists() else "missing"
    if problem:
        if problem != "missing":
            echo(f"warning: the image cache {directory} {problem}; decoding the images again.")
        remove(directory)
        _build(directory, records, class_names, image_size, workers, progress)
    return open_cache(directory)


def cache_problem(directory: Path) -> str | None:
    """Why a cache folder cannot be mapped, or None: its manifest must read and be this
    folder's, and the images file must hold exactly the rows listed (a short file would fail to
    map, or map rows of zeros) with the content digest written beside them (a size check alone
    passes a file of zeros, or another cache's images of the same size)."""
    try:
        manifest = json.loads((directory / MANIFEST_FILE).read_text())
        count, size = len(manifest["rels"]), int(manifest["image_size"])
        stored = (directory / IMAGES_FILE).stat().st_size if count else 0
        listed = len(manifest["labels"]) == len(manifest["splits"]) == count
        if not listed or stored != count * size * size * 3:
            return "is incomplete"
        if manifest["key"] != directory.name.removeprefix(PREFIX):
            return f"holds another cache ({PREFIX}{manifest['key']})"
        if "digest" not in manifest:
            return "has no content digest (an older version wrote it)"
        if manifest["digest"] != content_digest(_map_images(directory, count, size)):
            return "does not match its content digest (overwritten or replaced)"
    except (OSError, ValueError, KeyError, TypeError):
        return "has no readable manifest"
    return None


def _map_images(directory: Path, count: int, size: int) -> np.ndarray:
    shape = (count, size, size, 3)
    if not count:
        return np.zeros(shape, np.uint8)
    return np.memmap(directory / IMAGES_FILE, dtype=np.uint8, mode="r", shape=shape)


def open_cache(directory: Path) -> ImageCache:
    """Map a finished cache folder read-only; the OS page cache keeps hot images in memory."""
    manifest = json.loads((directory / MANIFEST_FILE).read_text())
    size = manifest["image_size"]
    images = _map_images(directory, len(manifest["rels"]), size)
    return ImageCache(
        directory=directory,
        key=manifest["key"],
        image_size=size,
        images=images,
        labels=np.array(manifest["labels"], dtype=np.int32),
        rels=manifest["rels"],
        splits=manifest["splits"],
        class_names=manifest["class_names"],
    )


def _build(
    directory: Path,
    records: Sequence,
    class_names: Sequence[str],
    image_size: int,
    workers: int | None,
    progress: bool,
) -> None:
    """Decode into a temporary folder and rename it into place; a write that fails (a full
    disk) leaves no folder behind and says which cache could not be written."""
    ordered = sorted(records, key=lambda r: r.rel)
    temp = directory.with_name(f".{directory.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        temp.mkdir(parents=True)
        digest = content_digest(b"")
        if ordered:
            digest = _decode_all(temp / IMAGES_FILE, ordered, image_size, workers, progress)
        manifest = _manifest(directory, ordered, class_names, image_size)
        (temp / MANIFEST_FILE).write_text(json.dumps({**manifest, "digest": digest}))
        try:
            temp.rename(directory)
        except OSError:
            if cache_problem(directory):
                raise
            # Another process finished the same cache first: theirs is identical, keep it.
    except OSError as error:
        raise write_error(directory, error) from error
    finally:
        remove(temp)


def _decode_all(
    path: Path, ordered: Sequence, image_size: int, workers: int | None, progress: bool
) -> str:
    """Decode every image into ``path``; the content digest of what was written."""
    shape = (len(ordered), image_size, image_size, 3)
    _allocate(path, int(np.prod(shape)))
    images = np.memmap(path, dtype=np.uint8, mode="r+", shape=shape)

    def decode(i: int) -> None:
        images[i] = load_rgb(ordered[i].path, image_size)

    # Pillow releases the GIL while decoding and resizing, so threads scale with cores.
    with ThreadPoolExecutor(max_workers=workers or min(32, os.cpu_count() or 1)) as pool:
        jobs = pool.map(decode, range(len(ordered)))
        for _ in tqdm(
            jobs,
            total=len(ordered),
            desc="Decoding images",
            unit="img",
            disable=not progress,
            leave=False,
        ):
            pass
    images.flush()  # the map is closed as this function returns, before the rename
    return content_digest(images)


def _allocate(path: Path, size: int) -> None:
    """Reserve the images file's blocks up front: a full disk is then an OSError here, not a
    SIGBUS that kills the process when a page of the memory map is first written."""
    with open(path, "wb") as fp:
        fp.truncate(size)  # a sparse file, as np.memmap makes; where possible, reserved below
        if not hasattr(os, "posix_fallocate"):  # macOS, Windows
            return
        try:
            os.posix_fallocate(fp.fileno(), 0, size)
        except OSError as error:
            if error.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                raise  # not a filesystem that cannot reserve: a full disk, an I/O error


def _manifest(
    directory: Path, ordered: Sequence, class_names: Sequence[str], image_size: int
) -> dict:
    label_index = {name: i for i, name in enumerate(class_names)}
    return {
        "key": directory.name.removeprefix(PREFIX),
        "image_size": image_size,
        "decoder_version": DECODER_VERSION,
        "class_names": list(class_names),
        "rels": [r.rel for r in ordered],
        "labels": [label_index[r.label] for r in ordered],
        "splits": [r.split for r in ordered],
    }
