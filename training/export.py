"""Export a run's model: ``.keras`` anywhere, SavedModel, TFLite (LiteRT) and ONNX on TensorFlow.

SavedModel, LiteRT and ONNX go through Keras' own ``model.export``, from the TensorFlow backend
(ONNX with the ``[onnx]`` extra's converter: ``training.export_onnx``).
The exported graph keeps the uint8 input and the preprocessing, like the ``.keras`` file.

An export never destroys: it is written to a temporary sibling and renamed into place only when
complete, so a failure leaves the target as it was. An existing target is refused unless
``force``, and even then only an earlier export of the same format is replaced (never an
arbitrary file or folder, never the run store). The suffix follows the format, so what is
written is what ``predict`` and the format's own tools expect.

Every export carries Babysitter's marker (:data:`MARKER`: an entry of the ``.keras`` zip, a file
in the SavedModel folder, a trailer after the TFLite flatbuffer, which readers ignore), and
``--force`` replaces only a target carrying it: a model file that merely looks like an export
(someone's own Keras model) is never replaced. An ONNX file carries it in its ``metadata_props``.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
import zipfile
from collections.abc import Callable
from pathlib import Path

import keras

from training.errors import BackendError, ConfigError, ExportError
from training.export_onnx import mark_onnx, not_onnx, onnx_marked, require_converter, write_onnx
from training.predict import load_model_file, resolve_model_path
from training.store import RunStore

FORMATS = {
    "keras": "model.keras",
    "savedmodel": "saved_model",
    "tflite": "model.tflite",
    "onnx": "model.onnx",
}
SUFFIXES = {"keras": ".keras", "tflite": ".tflite", "onnx": ".onnx"}
MARKER = "babysitter-export.json"
"""The name of the marker in a ``.keras`` zip and a SavedModel folder."""
TFLITE_TRAILER = b"\n\x00babysitter-export\n"
"""The marker after a TFLite flatbuffer (its readers stop at the flatbuffer's own end)."""
SAVEDMODEL_ENTRIES = {"saved_model.pb", "variables", "assets", "fingerprint.pb", MARKER}


def export_model(
    model_or_run: str,
    fmt: str,
    output: Path | None = None,
    store: RunStore | None = None,
    *,
    force: bool = False,
) -> Path:
    """Write the model in ``fmt`` and return where; default next to the run's model.

    The default place (the run's ``export/`` folder) is Babysitter's own: an earlier export
    there is replaced without ``force``.
    """
    if fmt not in FORMATS:
        raise ConfigError(f"Expected --format to be one of {list(FORMATS)}. Received: {fmt!r}.")
    if fmt != "keras" and keras.backend.backend() != "tensorflow":
        raise BackendError(
            f"Export to {fmt} needs the TensorFlow backend; this process runs Keras on "
            f"{keras.backend.backend()}. Run it as: KERAS_BACKEND=tensorflow python -m training "
            f"export {model_or_run} --format {fmt}"
        )
    if fmt == "onnx":
        require_converter()
    source = resolve_model_path(model_or_run, store)
    if output is None:  # the run's own export folder: an earlier export there is replaced
        target = source.parent / "export" / FORMATS[fmt]
        _check_target(target, fmt, True, source, home=None, own_place=True)
    else:
        target = Path(os.path.abspath(Path(output).expanduser()))
        _check_target(target, fmt, force, source, home=(store or RunStore()).home)
    model = load_model_file(source)  # refuse to export a file that would not load
    if fmt == "keras":
        write = lambda temp: shutil.copyfile(source, temp)  # noqa: E731
    elif fmt == "onnx":
        write = lambda temp: write_onnx(model, temp)  # noqa: E731
    else:
        kind = "tf_saved_model" if fmt == "savedmodel" else "litert"
        write = lambda temp: model.export(str(temp), format=kind, verbose=False)  # noqa: E731
    _write_in_place(target, fmt, lambda temp: _mark(temp, fmt, write))
    return target


def _mark(temp: Path, fmt: str, write: Callable[[Path], object]) -> None:
    """``write`` the export, then add Babysitter's marker to it (see the module docstring)."""
    write(temp)
    if fmt == "tflite":
        with open(temp, "ab") as fp:
            fp.write(TFLITE_TRAILER)
        return
    note = json.dumps({"babysitter_export": 1, "format": fmt})
    if fmt == "onnx":
        mark_onnx(temp, note)
        return
    if fmt == "savedmodel":
        (temp / MARKER).write_text(note + "\n")
        return
    with zipfile.ZipFile(temp, "a") as archive:
        if MARKER not in archive.namelist():  # an export of an export is marked already
            archive.writestr(MARKER, note)


def _marked(target: Path, fmt: str) -> bool:
    """Whether ``target`` (a file or folder of ``fmt``) carries Babysitter's export marker."""
    if fmt == "savedmodel":
        return (target / MARKER).is_file()
    if fmt == "onnx":
        return onnx_marked(target)
    if fmt == "tflite":
        with open(target, "rb") as fp:
            fp.seek(max(0, target.stat().st_size - len(TFLITE_TRAILER)))
            return fp.read() == TFLITE_TRAILER
    with zipfile.ZipFile(target) as archive:
        return MARKER in archive.namelist()


def _check_target(
    target: Path, fmt: str, force: bool, source: Path, home: Path | None, own_place: bool = False
) -> None:
    """Refuse a target an export must not write; ``own_place``: the run's ``export/`` folder,
    where only Babysitter writes (exports from before the marker are replaced too)."""
    suffix = SUFFIXES.get(fmt)
    if suffix and target.suffix.lower() != suffix:
        raise ConfigError(
            f"Expected --output to end in {suffix} for --format {fmt}. Received: {target}."
        )
    if fmt == "savedmodel" and target.suffix.lower() in (".keras", ".tflite", ".h5"):
        raise ConfigError(
            f"Expected --output to be a folder name for --format savedmodel. Received: {target}."
        )
    if home is not None and _inside(home, target):
        raise ExportError(
            f"Refusing to export to {target}: it holds the run store ({home}). Choose another "
            "--output."
        )
    if fmt == "keras" and target.exists() and target.resolve() == source.resolve():
        raise ExportError(f"--output {target} is the model being exported; choose another path.")
    if not (target.exists() or target.is_symlink()):
        return
    if not force:
        raise ExportError(
            f"{target} already exists; nothing was changed. Choose another --output, or pass "
            f"--force to replace an earlier {fmt} export there."
        )
    why = _not_an_export(target, fmt)
    if why is None and not own_place and not _marked(target, fmt):
        why = "is not one Babysitter wrote (it carries no export marker)"
    if why:
        raise ExportError(
            f"--force replaces only an earlier {fmt} export, and {target} {why}; nothing was "
            "changed. Choose another --output."
        )


def _inside(folder: Path, target: Path) -> bool:
    """Whether ``target`` is ``folder``, above it, or within it."""
    folder, target = folder.resolve(), target.resolve()
    return folder == target or target in folder.parents or folder in target.parents


def _not_an_export(target: Path, fmt: str) -> str | None:
    """Why ``target`` is not an earlier export of ``fmt`` (None when it is one)."""
    if target.is_symlink():
        return "is a symbolic link"
    if fmt == "savedmodel":
        if not target.is_dir():
            return "is not a folder"
        entries = {p.name for p in target.iterdir()}
        if "saved_model.pb" not in entries or entries - SAVEDMODEL_ENTRIES:
            return "is not a SavedModel folder (saved_model.pb, variables/, assets/ only)"
        return None
    if not target.is_file():
        return "is not a file"
    if fmt == "onnx":
        return not_onnx(target)
    if fmt == "tflite":
        with open(target, "rb") as fp:
            header = fp.read(8)
        return None if header[4:8] == b"TFL3" else "is not a TFLite file"
    try:
        with zipfile.ZipFile(target) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return "is not a .keras file"
    return None if {"config.json", "metadata.json"} <= names else "is not a .keras file"


def _write_in_place(target: Path, fmt: str, write: Callable[[Path], object]) -> None:
    """``write`` a temporary sibling, then rename it over ``target`` (which is kept on failure)."""
    tag = uuid.uuid4().hex[:8]
    temp = target.with_name(f".{target.stem}.tmp-{tag}{target.suffix}")
    old = target.with_name(f".{target.name}.old-{tag}")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        write(temp)
        if target.is_dir():  # a folder cannot be renamed over another: swap, then delete
            os.rename(target, old)
            os.rename(temp, target)
            shutil.rmtree(old)
        else:
            os.replace(temp, target)
    except Exception as error:
        if temp.is_dir():
            shutil.rmtree(temp, ignore_errors=True)
        elif temp.exists():
            temp.unlink()
        if old.exists() and not target.exists():
            os.rename(old, target)
        reason = error.strerror if isinstance(error, OSError) and error.strerror else error
        raise ExportError(
            f"Could not write the {fmt} export to {target} ({type(error).__name__}: {reason}); "
            "nothing was changed there. Check that the folder exists and is writable."
        ) from error
