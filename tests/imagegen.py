"""Tiny generated images for tests: real files on disk, learnable per-class colours."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

PALETTE = [(220, 40, 40), (40, 200, 60), (40, 80, 220), (230, 200, 30), (160, 40, 200)]


def class_image(class_index: int, seed: int, size: int = 16) -> Image.Image:
    """A noisy image whose mean colour identifies its class; every (class, seed) is distinct."""
    rng = np.random.default_rng(1000 * class_index + seed)
    base = np.array(PALETTE[class_index % len(PALETTE)], dtype=np.float32)
    noise = rng.normal(0, 40, size=(size, size, 3))
    pixels = np.clip(base + noise, 0, 255).astype(np.uint8)
    return Image.fromarray(pixels, "RGB")


def make_image_folder(
    root: Path,
    classes: dict[str, int] | None = None,
    size: int = 16,
    fmt: str = "png",
    splits: dict[str, dict[str, int]] | None = None,
) -> Path:
    """Write a dataset: ``root/class/img.png`` or, with ``splits``, ``root/split/class/img.png``."""
    root.mkdir(parents=True, exist_ok=True)
    layout = splits if splits is not None else {"": classes or {"cat": 6, "dog": 6}}
    seed = 0
    for split, counts in layout.items():
        for class_index, (name, count) in enumerate(counts.items()):
            folder = root / split / name if split else root / name
            folder.mkdir(parents=True, exist_ok=True)
            for _ in range(count):
                seed += 1
                class_image(class_index, seed, size).save(folder / f"img_{seed:04d}.{fmt}")
    return root


def zip_folder(folder: Path, zip_path: Path, top_level: str | None = None) -> Path:
    """Zip a folder's files, optionally under one top-level directory name."""
    with zipfile.ZipFile(zip_path, "w") as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                rel = path.relative_to(folder).as_posix()
                archive.write(path, f"{top_level}/{rel}" if top_level else rel)
    return zip_path
