"""Predictions from raw image files with a saved model, which is untrusted input like any file.

A ``.keras`` file is a zip holding a config and weights. It is vetted before Keras opens it
(extension, size, the archive checks used for datasets) and loaded with ``safe_mode=True``, so
no Python code (lambda layers, pickles) can come with it. Class names and preprocessing are in
the file; images are decoded and resized by the same function that built the training cache.
"""

from __future__ import annotations

import json
import re
import warnings
import zipfile
from pathlib import Path

import keras
import numpy as np

import training.model.layers
import training.model.losses  # noqa: F401
from training.data.archive import ArchiveLimits, check_zip_entries
from training.data.images import load_rgb
from training.errors import BabysitterError, ConfigError, ImageError, ModelFileError
from training.model.forbidden import LAMBDA_LAYER, forbidden_object
from training.store import RunStore
from training.tta import tta_probabilities, tta_views

MAX_MODEL_BYTES = 4 * 1024**3
MODEL_LIMITS = ArchiveLimits(
    max_total_bytes=8 * 1024**3, max_entries=64, max_ratio=1000, max_entry_bytes=MAX_MODEL_BYTES
)


MAX_CONFIG_BYTES = 16 * 1024**2
"""config.json and metadata.json, uncompressed. The largest Babysitter model's config (a
DenseNet201 classifier) is under 1 MB; a 1 GiB config of whitespace took 2.9 GB to parse."""
MAX_NON_WEIGHT_BYTES = 64 * 1024**2
"""Everything in a .keras file but its weights: configs, metadata, assets."""
WEIGHTS_ENTRY = "model.weights.h5"
PARSE_MEMORY_FACTOR = 10
"""Peak memory of parsing JSON and building the model, per byte of config (measured ≈ 3×)."""
_RESAVE = "use a .keras file saved by Babysitter's train, search or export commands"
HDF5_REFUSALS = {
    "external Dataset": "an external HDF5 dataset, data read from another file on this machine",
    "virtual Dataset": "a virtual HDF5 dataset, data read from other files on this machine",
    "ExternalLink": "an HDF5 external link, to another file on this machine",
    "SoftLink": "an HDF5 soft link",
}
"""Keras' refusals of weights that reach outside the file, in words."""


def check_model_entries(path: Path, entries) -> None:
    """Refuse a model file whose parts are bigger than a model needs, before parsing any."""
    sizes = {info.filename: info.file_size for info in entries}
    if "config.json" not in sizes:
        raise ModelFileError(
            f"{path}: holds no config.json, so it is not a Keras model file; {_RESAVE}."
        )
    for name in ("config.json", "metadata.json"):
        if sizes.get(name, 0) > MAX_CONFIG_BYTES:
            raise ModelFileError(
                f"{path}: {name} is {sizes[name]:,} bytes uncompressed, over the "
                f"{MAX_CONFIG_BYTES:,}-byte limit (a model's {name} is well under 1 MB); "
                "refused before parsing."
            )
    other = sum(size for name, size in sizes.items() if name != WEIGHTS_ENTRY)
    if other > MAX_NON_WEIGHT_BYTES:
        raise ModelFileError(
            f"{path}: {other:,} bytes besides the weights, over the {MAX_NON_WEIGHT_BYTES:,}-byte "
            "limit; refused before parsing."
        )
    need = sizes.get(WEIGHTS_ENTRY, 0) + PARSE_MEMORY_FACTOR * sizes.get("config.json", 0)
    available = available_memory()
    if available is not None and need > available:
        raise ModelFileError(
            f"{path}: loading it needs about {need / 2**20:,.0f} MiB of memory and "
            f"{available / 2**20:,.0f} MiB is available; refused before parsing."
        )


def available_memory() -> int | None:
    """Bytes of memory available now (Linux's MemAvailable: free plus reclaimable cache), or
    None where the system does not say (then no memory check is made)."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def resolve_model_path(model_or_run: str, store: RunStore | None = None) -> Path:
    """A ``.keras`` path as given, or the model file of a run id (or unique prefix)."""
    candidate = Path(model_or_run).expanduser()
    try:
        if candidate.exists():
            return candidate
    except OSError:  # a name too long to be a path (ENAMETOOLONG) may still be asked as an id
        pass
    if candidate.suffix:
        raise ModelFileError(
            f"Model file not found: {candidate}. Give a .keras file or a run id "
            "from `python -m training runs list`."
        )
    store = store or RunStore()
    run = store.get_run(model_or_run)
    path = store.artifact(run.id, "model")
    if not path.exists():
        raise ModelFileError(
            f"Run {run.id} has no saved model (status: {run.status}). Only completed runs have "
            "one; see `python -m training runs show " + run.id + "`."
        )
    return path


def load_model_file(path: Path) -> keras.Model:
    """Load a Babysitter ``.keras`` file safely, or explain why it cannot be."""
    path = Path(path)
    if path.suffix.lower() != ".keras" or not path.is_file():
        kind = " is a folder;" if path.is_dir() else ""
        raise ModelFileError(
            f"{path}:{kind} only .keras model files are accepted (no .h5, SavedModel "
            "or pickle: they can carry code). Export the model as .keras."
        )
    if path.stat().st_size > MAX_MODEL_BYTES:
        raise ModelFileError(
            f"{path}: {path.stat().st_size:,} bytes is over the "
            f"{MAX_MODEL_BYTES:,}-byte limit for model files."
        )
    try:
        entries = check_zip_entries(path, MODEL_LIMITS)
    except BabysitterError as error:  # the problem without the archive's advice for datasets
        why = getattr(error, "problem", None) or str(error)
        raise ModelFileError(f"{path}: not a valid .keras file ({why}); {_RESAVE}.") from None
    check_model_entries(path, entries)
    why = forbidden_object(_config_of(path))
    if why:
        raise ModelFileError(f"{path}: refused before loading ({why}); {_RESAVE}.")
    with warnings.catch_warnings(record=True) as caught:  # a refusal is one line, no warnings
        warnings.simplefilter("always")
        try:
            model = keras.saving.load_model(path, compile=False, safe_mode=True)
        except Exception as error:  # Keras raises many types for a bad file; all mean "unusable"
            raise ModelFileError(
                f"{path}: Keras could not load it safely ({_keras_refusal(error)}); {_RESAVE}."
            ) from None
    for w in caught:  # a file that loads keeps Keras' warnings about it
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    class_names_of(model, path)
    return model


def _config_of(path: Path) -> object:
    """The parsed ``config.json`` (its size is checked already), or None when it does not
    parse: Keras then says what is wrong with it."""
    try:
        with zipfile.ZipFile(path) as archive:
            return json.loads(archive.read("config.json"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None


def _keras_refusal(error: Exception) -> str:
    """Why Keras refused a file, in one short line: its messages run to pages, quote the file's
    (untrusted) config and suggest ``safe_mode=False``, which is never an option here."""
    text = str(error)
    if "Lambda" in text and "arbitrary code execution" in text:
        return LAMBDA_LAYER
    hdf5 = re.search(r"Not allowed: H5 file with (external Dataset|virtual Dataset|\w+Link)", text)
    if hdf5:
        return f"its weights hold {HDF5_REFUSALS.get(hdf5.group(1), hdf5.group(1))}"
    refused = re.search(r"Not allowed: ([^\n]{1,200})", text)
    if refused:
        return _printable(refused.group(1))
    unknown = re.search(r"Could not locate (?:class|function) '([^']{1,80})'", text)
    if unknown:
        return f"it uses {unknown.group(1)!r}, which neither Keras nor Babysitter defines"
    first = _printable(text.strip().splitlines()[0] if text.strip() else "")
    return f"{type(error).__name__}: {first[:200]}{'…' if len(first) > 200 else ''}"


def _printable(text: str) -> str:
    """Untrusted text from the file, control characters escaped."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def class_names_of(model: keras.Model, path: Path | str = "model") -> list[str]:
    try:
        return list(model.get_layer("class_names").class_names)
    except ValueError:
        raise ModelFileError(
            f"{path}: the model has no class names layer; it was not saved by "
            "Babysitter's train or search commands."
        ) from None


def image_size_of(model: keras.Model) -> int:
    return int(model.input_shape[1])


def check_top_k(top_k: int) -> None:
    """Refuse a ``--top-k`` that asks for no class at all (it used to be raised to 1 silently)."""
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ConfigError(f"Expected --top-k to be at least 1. Received: {top_k!r}.")


def predict_files(
    model: keras.Model,
    files: list[str | Path],
    top_k: int = 3,
    batch_size: int = 32,
    tta: bool = False,
) -> list[dict]:
    """Top-k classes per file; an unreadable file gets an ``error`` entry and the rest go on.

    ``top_k`` above the number of classes gives every class; below 1 is refused. ``tta``
    averages over the views of ``training.tta``, named in each result's ``views``.
    """
    check_top_k(top_k)
    names = class_names_of(model)
    size = image_size_of(model)
    top_k = max(1, min(top_k, len(names)))
    results: list[dict] = [{"file": str(f)} for f in files]
    images, positions = [], []
    for i, file in enumerate(files):
        try:
            images.append(load_rgb(file, size))
            positions.append(i)
        except ImageError as error:
            results[i]["error"] = error.reason
        except OSError as error:
            results[i]["error"] = f"cannot read the file ({error.strerror or error})"
    if images:
        probabilities = predict_arrays(model, np.stack(images), batch_size, tta=tta)
        views = [view.name for view in tta_views(model)] if tta else None
        for i, row in zip(positions, probabilities, strict=True):
            best = np.argsort(-row)[:top_k]
            results[i]["predictions"] = [
                {"class": names[j], "probability": float(row[j])} for j in best
            ]
            if views:
                results[i]["views"] = views
    return results


def predict_arrays(
    model: keras.Model, images: np.ndarray, batch_size: int = 32, tta: bool = False
) -> np.ndarray:
    """Probabilities for uint8 (N, size, size, 3) images, as float32; with ``tta``, averaged
    over the views of ``training.tta``."""
    if tta:
        return tta_probabilities(model, images, batch_size)
    out = model.predict(images.astype(np.uint8), batch_size=batch_size, verbose=0)
    return np.asarray(out, dtype=np.float32)
