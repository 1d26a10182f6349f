"""Datasets and plants for the fault zoo (``bench/faults.py``): copies of a dataset with one fault.

Every plant works on a copy laid out as ``train/<class>/`` and ``val/<class>/``, so a fault can
be put into the training split alone (as a user's mislabelled folder would be) while validation
keeps honest labels.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff"}
LOOKALIKE_CLASSES = ("disc", "block", "bars")
LOOKALIKE_COLOURS = {"disc": (200, 60, 60), "block": (60, 170, 70), "bars": (60, 90, 200)}


def images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


def as_splits(source: Path, target: Path, val_share: float = 0.25, seed: int = 0) -> Path:
    """Copy ``source`` to ``target`` as train/ and val/ class folders (stratified when the source
    has no split folders, deterministic by ``seed``)."""
    target.mkdir(parents=True)
    if (source / "train").is_dir():
        for split in ("train", "val"):
            if (source / split).is_dir():
                shutil.copytree(source / split, target / split)
        return target
    rng = np.random.default_rng(seed)
    for folder in sorted(p for p in source.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = images_in(folder)
        order = rng.permutation(len(files))
        cut = max(1, round(len(files) * val_share))
        for rank, index in enumerate(order):
            split = "val" if rank < cut else "train"
            (target / split / folder.name).mkdir(parents=True, exist_ok=True)
            shutil.copy(files[index], target / split / folder.name / files[index].name)
    return target


def classes_of(root: Path, split: str = "train") -> list[str]:
    return sorted(p.name for p in (root / split).iterdir() if p.is_dir())


# -- the look-alike synthetic set ----------------------------------------------------------------


def draw_lookalike(name: str, size: int, rng: np.random.Generator) -> Image.Image:
    """One class's layout (a disc, a block or bars in the class colour on a grey ground) with
    jittered position, size and colour, and its own noise: images of a class look alike, and no
    two are the same."""
    scale = 4
    canvas = size * scale
    ground = np.array([120, 120, 120]) + rng.integers(-12, 13, 3)
    colour = np.array(LOOKALIKE_COLOURS[name]) + rng.integers(-20, 21, 3)
    image = Image.new("RGB", (canvas, canvas), tuple(int(v) for v in ground))
    draw = ImageDraw.Draw(image)
    cx, cy = (canvas / 2 + rng.uniform(-0.12, 0.12, 2) * canvas).tolist()
    half = canvas * rng.uniform(0.22, 0.3)
    fill = tuple(int(v) for v in colour)
    if name == "disc":
        draw.ellipse([cx - half, cy - half, cx + half, cy + half], fill=fill)
    elif name == "block":
        draw.rectangle([cx - half, cy - half, cx + half, cy + half], fill=fill)
    else:
        bar = canvas / rng.uniform(7, 9)
        top = rng.uniform(0, bar)
        while top < canvas:
            draw.rectangle([0, top, canvas, top + bar / 2], fill=fill)
            top += bar
    small = np.asarray(image.resize((size, size), Image.Resampling.BOX), np.float32)
    small = small + rng.normal(0, 8, small.shape)
    return Image.fromarray(np.clip(np.rint(small), 0, 255).astype(np.uint8), "RGB")


def make_lookalike(target: Path, train: int = 60, val: int = 20, size: int = 48) -> Path:
    """The issue's healthy look-alike set: 3 classes, ``train``/``val`` per class, each image
    drawn separately."""
    for index, name in enumerate(LOOKALIKE_CLASSES):
        for split, count, offset in (("train", train, 0), ("val", val, 10_000)):
            folder = target / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                rng = np.random.default_rng([index, offset + i])
                draw_lookalike(name, size, rng).save(folder / f"{split}_{i:04d}.png")
    return target


# -- plants --------------------------------------------------------------------------------------


def _move(path: Path, root: Path, split: str, label: str) -> None:
    folder = root / split / label
    folder.mkdir(parents=True, exist_ok=True)
    path.rename(folder / f"{path.parent.name}__{path.name}")


def relabel_training(root: Path, share: float, rng: np.random.Generator) -> list[str]:
    """Move ``share`` of the training images to another class folder (1.0: every label shuffled
    at random, which keeps about 1/C of them right). Returns the moved files' new paths."""
    names = classes_of(root)
    moved = []
    files = images_in(root / "train")
    if share >= 1.0:
        labels = rng.permutation([f.parent.name for f in files])
        for path, label in zip(files, labels, strict=True):
            if label != path.parent.name:
                _move(path, root, "train", label)
                moved.append(f"train/{label}/{path.parent.name}__{path.name}")
        return moved
    for index in rng.choice(len(files), round(share * len(files)), replace=False):
        path = files[index]
        label = rng.choice([n for n in names if n != path.parent.name])
        _move(path, root, "train", str(label))
        moved.append(f"train/{label}/{path.parent.name}__{path.name}")
    return moved


def leak_copies(root: Path, share: float, rng: np.random.Generator) -> None:
    """Exact copies of ``share`` of the training images placed in validation, same class."""
    files = images_in(root / "train")
    for index in rng.choice(len(files), max(1, round(share * len(files))), replace=False):
        path = files[index]
        shutil.copy(path, root / "val" / path.parent.name / f"leaked_{path.name}")


def shrink_class(root: Path, name: str, factor: int) -> None:
    """Keep 1/``factor`` of one class's images in every split (at least 2 each)."""
    for split in ("train", "val"):
        files = images_in(root / split / name)
        for path in files[max(2, len(files) // factor) :]:
            path.unlink()


def keep_per_class(root: Path, count: int) -> None:
    for folder in (root / "train").iterdir():
        for path in images_in(folder)[count:]:
            path.unlink()


def blank_all(root: Path) -> None:
    """Every image replaced by the same mid-grey picture: inputs that carry nothing."""
    for path in images_in(root):
        grey = Image.new("RGB", (64, 64), (128, 128, 128))
        path.unlink()
        grey.save(path.with_suffix(".png"))


def redraw_val_lookalikes(root: Path, size: int = 48) -> None:
    """Validation replaced by fresh draws of the look-alike classes (new seeds): distinct
    images that share each class's layout and colours with the training ones."""
    for folder in (root / "val").iterdir():
        files = images_in(folder)
        for i, path in enumerate(files):
            path.unlink()
            rng = np.random.default_rng([99, LOOKALIKE_CLASSES.index(folder.name), i])
            draw_lookalike(folder.name, size, rng).save(folder / f"redrawn_{i:04d}.png")
