"""Tiny generated images for tests: real files on disk, learnable per-class colours."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

PALETTE = [(220, 40, 40), (40, 200, 60), (40, 80, 220), (230, 200, 30), (160, 40, 200)]


def class_image(class_index: int, seed: int, size: int = 16) -> Image.Image:
    """A noisy image whose mean colour identifies its class; every (class, seed) is distinct."""
    rng = np.random.default_rng(1000 * class_index + seed)
    base = np.array(PALETTE[class_index % len(PALETTE)], dtype=np.float32)
    noise = rng.normal(0, 40, size=(size, size, 3))
    pixels = np.clip(base + noise, 0, 255).astype(np.uint8)
    return Image.fromarray(pixels, "RGB")


def photo_image(seed: int, size: int = 96) -> Image.Image:
    """A smooth, photo-like image: perceptual hashes are stable for it, unlike pure noise."""
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray(rng.integers(0, 255, (6, 6, 3), dtype=np.uint8))
    return coarse.resize((size, size), Image.Resampling.BICUBIC)


SHAPES = ("circle", "square", "stripes")


def shape_image(class_index: int, seed: int, size: int = 48, noise: float = 20.0) -> Image.Image:
    """A look-alike: the class's shape in the class's colour, jittered, with its own noise.

    Images of a class share a layout, so their perceptual hashes often sit within a few bits,
    yet each is drawn separately (position, size, phase, noise): none is a duplicate.
    """
    rng = np.random.default_rng([class_index, seed])
    big = size * 4  # drawn large, then box-downsampled: antialiased edges
    mask = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(mask)
    r = big * rng.uniform(0.22, 0.3)
    cx, cy = big / 2 + rng.uniform(-0.1, 0.1, 2) * big
    shape = SHAPES[class_index % len(SHAPES)]
    if shape == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=255)
    elif shape == "square":
        draw.rectangle((cx - r, cy - r, cx + r, cy + r), fill=255)
    else:
        period = big * rng.uniform(0.22, 0.28)
        for x0 in np.arange(rng.uniform(0, period) - period, big, period):
            draw.rectangle((x0, 0, x0 + period / 2, big), fill=255)
    alpha = np.asarray(mask.resize((size, size), Image.Resampling.BOX), np.float32)[..., None]
    alpha /= 255.0
    colour = np.array(PALETTE[class_index % len(PALETTE)], np.float32)
    pixels = 235.0 * (1 - alpha) + colour * alpha + rng.normal(0, noise, (size, size, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def make_shapes_folder(root: Path, splits: dict[str, int], size: int = 48) -> Path:
    """``root/split/{circle,square,stripes}/*.png``: ``splits[split]`` look-alikes per class."""
    seed = 0
    for split, count in splits.items():
        for class_index, name in enumerate(SHAPES):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for _ in range(count):
                seed += 1
                shape_image(class_index, seed, size).save(folder / f"img_{seed:04d}.png")
    return root


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


def make_tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]], mode="w:gz"):
    """A tarball of ``(TarInfo, bytes)`` members; ``None`` bytes for links, folders, devices."""
    with tarfile.open(path, mode) as archive:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            archive.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def mixed_image(class_index: int, seed: int, strength: float, size: int = 32) -> Image.Image:
    """A photo-like image of random content with its class's colour mixed in at ``strength``
    (0: no class signal at all, 1: the plain class colour): features that separate the classes
    weakly or well, from one knob."""
    rng = np.random.default_rng([class_index, seed, 7])
    content = np.asarray(photo_image(int(rng.integers(1 << 31)), size), np.float32)
    colour = np.array(PALETTE[class_index % len(PALETTE)], np.float32)
    pixels = (1 - strength) * content + strength * colour + rng.normal(0, 8, content.shape)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def make_mixed_folder(
    root: Path,
    classes: list[str],
    train: int,
    val: int,
    strength: float,
    size: int = 32,
    flip: float = 0.0,
) -> tuple[Path, set[str]]:
    """``root/{train,val}/class/*.png`` of :func:`mixed_image`; ``flip`` of the training images
    are filed under another class (seeded). Returns the root and the misfiled relative paths."""
    rng = np.random.default_rng(0)
    misfiled: set[str] = set()
    for split, count in (("train", train), ("val", val)):
        for class_index, name in enumerate(classes):
            for i in range(count):
                image = mixed_image(
                    class_index, i + (0 if split == "train" else 10_000), strength, size
                )
                label = name
                if split == "train" and rng.random() < flip:
                    label = classes[
                        (class_index + int(rng.integers(1, len(classes)))) % len(classes)
                    ]
                folder = root / split / label
                folder.mkdir(parents=True, exist_ok=True)
                path = folder / f"{name}_{i:04d}.png"
                image.save(path)
                if label != name:
                    misfiled.add(path.relative_to(root).as_posix())
    return root, misfiled
