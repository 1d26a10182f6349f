"""Why a model predicted what it did: a heatmap of where it looked, for its predicted class.

``python -m training explain RUN_OR_MODEL IMAGE...`` (and ``TrainedModel.explain``, the app's
Results and Predict pages) call :func:`explain_arrays`: Grad-CAM on the backbone's last
convolutional block (:mod:`training.model.gradcam`), or occlusion sensitivity
(:mod:`training.model.occlusion`) where Grad-CAM is not possible, named as such with the reason.
A heatmap is (size, size) in [0, 1] over the image as the model saw it (squashed to its input
size); the overlay stretches it back over the image's own shape, with Pillow and NumPy only.
The model file is untrusted like any other: it is loaded by :mod:`training.predict`'s checks.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
from PIL import Image

from training.atomic import atomic_path
from training.data.images import load_rgb
from training.errors import BackendError, ConfigError, ImageError
from training.model.gradcam import NoGradCam, find_cut, gradcam
from training.model.occlusion import occlusion
from training.predict import (
    class_names_of,
    image_size_of,
    load_model_file,
    predict_arrays,
    resolve_model_path,
)
from training.store import RunStore

BATCH = 16
CHUNK = 64
"""Files decoded and explained together."""
OVERLAY_SIDES = (224, 512)
"""An overlay's longer side is brought into this range: big enough to see, small to store."""
SUFFIX = ".explain.png"
# Anchors of a jet-like colour map: cold blue through cyan, yellow, to hot red.
COLOUR_STOPS = np.array([0.0, 0.125, 0.375, 0.625, 0.875, 1.0])
COLOURS = np.array(
    [[0, 0, 128], [0, 0, 255], [0, 255, 255], [255, 255, 0], [255, 0, 0], [128, 0, 0]], float
)
OPACITY = 0.6
"""How much colour the hottest pixel gets; a cold one shows the image as it is."""


@dataclass(frozen=True)
class Explanation:
    """Where the model looked for one image, and what it decided there.

    Attributes:
        heatmap: (size, size) float32 in [0, 1], 1 where the class's evidence is strongest.
        class_name: The predicted class, the one explained.
        probability: The model's probability for it.
        method: ``"gradcam"`` or ``"occlusion"`` (the fallback).
        layer: The layer Grad-CAM read (None for occlusion).
        reason: Why occlusion was used (None for Grad-CAM).
    """

    heatmap: np.ndarray
    class_name: str
    probability: float
    method: str
    layer: str | None = None
    reason: str | None = None

    def to_dict(self) -> dict:
        """The JSON fields (without the heatmap's pixels)."""
        fields = {"class": self.class_name, "probability": self.probability}
        fields["method"] = self.method
        if self.layer:
            fields["layer"] = self.layer
        if self.reason:
            fields["reason"] = self.reason
        return fields


def explain_arrays(model: keras.Model, images: np.ndarray) -> list[Explanation]:
    """One :class:`Explanation` per uint8 (N, size, size, 3) image, for its predicted class."""
    images = np.asarray(images, np.uint8)
    names = class_names_of(model)
    size = images.shape[1]
    try:
        cut, maps, probabilities = find_cut(model, images)
        classes = probabilities.argmax(axis=1)
        heatmaps = [_unit(_resize(m, (size, size))) for m in gradcam(cut, maps, classes)]
        method, layer, reason = "gradcam", cut.layer, None
    except (NoGradCam, BackendError) as why:
        probabilities = predict_arrays(model, images)
        classes = probabilities.argmax(axis=1)
        forward = lambda batch: predict_arrays(model, batch, BATCH)  # noqa: E731
        heatmaps = [_unit(occlusion(forward, im, c)) for im, c in zip(images, classes, strict=True)]
        method, layer, reason = "occlusion", None, f"Grad-CAM is not possible: {why}"
    return [
        Explanation(heat, names[c], float(row[c]), method, layer, reason)
        for heat, c, row in zip(heatmaps, classes, probabilities, strict=True)
    ]


def overlay(image: np.ndarray, heatmap: np.ndarray) -> Image.Image:
    """The uint8 (H, W, 3) image with the heatmap stretched over it in colour, hot = looked."""
    height, width = image.shape[:2]
    scale = min(max(OVERLAY_SIDES[0], max(height, width)), OVERLAY_SIDES[1]) / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    base = np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR), float)
    heat = np.clip(_resize(heatmap, size[::-1]), 0.0, 1.0)[..., None]
    colour = np.stack([np.interp(heat[..., 0], COLOUR_STOPS, c) for c in COLOURS.T], axis=-1)
    alpha = OPACITY * heat
    return Image.fromarray(np.round(base * (1 - alpha) + colour * alpha).astype(np.uint8))


def explain_files(
    model: keras.Model, files: list[str | Path], out: Path, names: list[str] | None = None
) -> list[dict]:
    """Explain each file and write its overlay to ``out`` (as ``names``, default
    ``<stem>.explain.png``); an unreadable file gets an ``error`` entry and the rest go on (as
    in ``predict``). Files are read a chunk at a time, so memory does not grow with their
    number."""
    names = _overlay_names(files) if names is None else names
    results: list[dict] = []
    for start in range(0, len(files), CHUNK):
        chunk = slice(start, start + CHUNK)
        results += _explain_chunk(model, files[chunk], out, names[chunk])
    return results


def _explain_chunk(
    model: keras.Model, files: list[str | Path], out: Path, names: list[str]
) -> list[dict]:
    results: list[dict] = [{"file": str(f)} for f in files]
    for result, name, found in zip(results, names, explain_images(model, files), strict=True):
        if isinstance(found, str):
            result["error"] = found
            continue
        explanation, image = found
        path = out / name
        with atomic_path(path) as temp:
            image.save(temp, format="PNG")
        result.update(explanation.to_dict())
        result["heatmap"] = str(path)
    return results


def explain_images(
    model: keras.Model, sources: list[str | Path | bytes]
) -> list[tuple[Explanation, Image.Image] | str]:
    """Per image file (or its bytes): its explanation and overlay, or why it cannot be read."""
    decoded = [_decode(source, image_size_of(model)) for source in sources]
    readable = [d for d in decoded if not isinstance(d, str)]
    found = iter(explain_arrays(model, np.stack([d[0] for d in readable])) if readable else [])
    return [
        d if isinstance(d, str) else (e := next(found), overlay(d[1], e.heatmap)) for d in decoded
    ]


def _decode(source: str | Path | bytes, size: int) -> tuple[np.ndarray, np.ndarray] | str:
    """The pixels the model sees (as ``predict`` decodes them) and the image to draw on (at
    most the overlay's size), or why the file cannot be read."""
    try:
        original = Image.fromarray(load_rgb(source))
    except ImageError as error:
        return error.reason
    except OSError as error:
        return f"cannot be read ({error.strerror or error})"
    pixels = load_rgb(original, size)
    original.thumbnail((OVERLAY_SIDES[1],) * 2, Image.Resampling.BILINEAR)
    return pixels, np.asarray(original)


def output_folder(source: Path, out: str | None, store: RunStore) -> Path:
    """Where the overlays go: ``--out``, else the run's own ``explain/`` folder, else an
    ``explain/`` folder beside a model file (as ``export`` does). Never elsewhere in the store.
    """
    run_id = store.run_holding(source)
    own = store.artifact(run_id, "explain") if run_id else None
    if out is None:
        target = own or source.parent / "explain"
    else:
        target = Path(os.path.abspath(Path(out).expanduser()))
    home = Path(os.path.realpath(store.home))
    resolved = Path(os.path.realpath(target))
    in_own_run = run_id is not None and _within(resolved, store.run_dir(run_id))
    if _within(resolved, home) and not in_own_run:
        raise ConfigError(
            f"Refusing to write heatmaps to {target}: it is inside the run store ({home}), which "
            "only Babysitter writes. Choose another --out."
        )
    if target.exists() and not target.is_dir():
        raise ConfigError(f"Expected --out to be a folder. Received: {target}, a file.")
    return target


def explain_command(args: argparse.Namespace) -> int:
    """``python -m training explain``: overlays in a folder, one line (or JSON entry) per image."""
    from training.cli.console import emit_json

    store = RunStore()
    source = resolve_model_path(args.model, store)
    out = output_folder(source, args.out, store)
    model = load_model_file(source)
    results = explain_files(model, args.images, out)
    if args.json:
        emit_json(results)
    for line in format_explanations(results, out):
        print(line)  # under --json this goes to stderr
    return 1 if any("error" in r for r in results) else 0


def format_explanations(results: list[dict], out: Path) -> list[str]:
    """What ``explain`` prints: the method once, then each image's class and overlay."""
    done = [r for r in results if "error" not in r]
    lines = []
    if done:
        first = done[0]
        how = f"Grad-CAM on {first['layer']}" if first["method"] == "gradcam" else "Occlusion"
        lines.append(f"{how}; heatmaps in {out}")
        if first.get("reason"):
            lines.append(f"  ({first['reason']})")
    for r in results:
        if "error" in r:
            lines.append(f"{r['file']}: error: {r['error']}")
        else:
            name = Path(r["heatmap"]).name
            lines.append(f"{r['file']}: {r['class']} {r['probability']:.1%}, looked: {name}")
    return lines


def _overlay_names(files: list[str | Path]) -> list[str]:
    """``<stem>.explain.png`` per file, numbered where two files share a stem."""
    names, seen = [], {}
    for file in files:
        stem = Path(file).stem or "image"
        seen[stem] = seen.get(stem, 0) + 1
        names.append(f"{stem}{SUFFIX}" if seen[stem] == 1 else f"{stem}-{seen[stem]}{SUFFIX}")
    return names


def _resize(heat: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A float map resized (bilinear) to (height, width)."""
    image = Image.fromarray(np.asarray(heat, np.float32))  # mode "F"
    return np.asarray(image.resize((shape[1], shape[0]), Image.Resampling.BILINEAR), np.float32)


def _unit(heat: np.ndarray) -> np.ndarray:
    """Scaled to [0, 1] by its maximum (all zeros stays all zeros: nothing pointed anywhere)."""
    heat = np.maximum(np.asarray(heat, np.float32), 0.0)
    peak = float(heat.max()) if heat.size else 0.0
    return heat / peak if peak > 0 else heat


def _within(path: Path, folder: Path) -> bool:
    folder = Path(os.path.realpath(folder))
    return path == folder or folder in path.parents
