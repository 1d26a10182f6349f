"""Weights a job can actually use, known before it starts.

ImageNet weights are either in the Keras cache already or downloaded by the job; on a machine
without internet access the job would fail minutes in. So the Launch page looks for the file
Keras would read (its name mirrors ``keras.applications`` 3.x) and tries a short connection to
the host it would download from; when neither works it starts from random weights and says why.
A weights file is the other way to start pretrained: an upload kept under the home, or a file
under the app's data roots (anything else is refused like a folder outside them). It is checked as
the job would load it (``training.model.weights_file``): what each backbone expects is computed
once per size in a subprocess, so the app never imports Keras, and kept under the home's cache.
"""

from __future__ import annotations

import functools
import importlib.metadata
import json
import os
import re
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from app.roots import data_roots, within_roots
from training.atomic import atomic_path
from training.errors import ConfigError
from training.model.backbones import WEIGHT_SUFFIXES, BackboneSpec
from training.model.weights_file import StoredWeights, WeightsFileError, check_layout, read_weights
from training.store import Layout

CONNECT_TIMEOUT_S = 2.0
LAYOUTS = "weights-layouts"  # under the home's cache: what each backbone asks a file for
LAYOUT_TIMEOUT_S = 600  # building the largest backbone once, on a slow machine
# The code the app runs, from a project folder or an installed package (``python -m`` looks here).
ROOT = Path(__file__).resolve().parents[1]
# Input sizes MobileNet v1/v2 have ImageNet weights for; Keras loads the 224 px file otherwise.
_MOBILENET_ROWS = {"mobilenet": (128, 160, 192, 224), "mobilenet_v2": (96, 128, 160, 192, 224)}


def imagenet_file(spec: BackboneSpec, image_size: int) -> str:
    """The name Keras caches ``spec``'s ImageNet weights without the top under, at this size."""
    name = spec.name.lower()
    if spec.family in _MOBILENET_ROWS:
        rows = image_size if image_size in _MOBILENET_ROWS[spec.family] else 224
        if spec.family == "mobilenet":
            return f"mobilenet_1_0_{rows}_tf_no_top.h5"
        return f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{rows}_no_top.h5"
    if spec.family == "mobilenet_v3":
        return f"weights_mobilenet_v3_{name.removeprefix('mobilenetv3')}_224_1.0_float_no_top_v2.h5"
    if spec.family == "nasnet":
        return f"nasnet_{name.removeprefix('nasnet')}_no_top.h5"
    if spec.family == "efficientnet":
        return f"{name}_notop.h5"
    if spec.family == "efficientnet_v2":
        return f"efficientnetv2-{name.removeprefix('efficientnetv2')}_notop.h5"
    if spec.family == "convnext":
        return f"convnext_{name.removeprefix('convnext')}_notop.h5"
    if spec.family in ("inception_v3", "inception_resnet_v2"):
        name = spec.family
    return f"{name}_weights_tf_dim_ordering_tf_kernels_notop.h5"


def keras_cache_dirs() -> list[Path]:
    """Where Keras keeps downloads: ``$KERAS_HOME/models`` (default ``~/.keras``), and
    ``/tmp/.keras/models``, its fallback when that folder is not writable."""
    home = os.environ.get("KERAS_HOME") or os.path.join("~", ".keras")
    return [Path(home).expanduser() / "models", Path("/tmp/.keras/models")]


def cached(spec: BackboneSpec, image_size: int) -> Path | None:
    name = imagenet_file(spec, image_size)
    return next((d / name for d in keras_cache_dirs() if (d / name).is_file()), None)


def can_connect(url: str, timeout: float = CONNECT_TIMEOUT_S) -> bool:
    """Whether a TCP connection to the URL's host opens within ``timeout`` (name lookup too,
    which ``socket`` alone would not bound, so it runs in a thread that is left behind)."""
    parsed = urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    done: list[bool] = []

    def attempt() -> None:
        try:
            socket.create_connection((parsed.hostname, port), timeout=timeout).close()
            done.append(True)
        except OSError:
            done.append(False)

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(timeout)
    return bool(done and done[0])


def imagenet_problem(
    specs: list[BackboneSpec], image_size: int, reachable: dict[str, bool]
) -> str | None:
    """Why ImageNet weights cannot be had for some of ``specs`` (None when they can).

    ``reachable`` caches each host's answer for the session, so a page rerun costs nothing.
    """
    missing = [s for s in specs if cached(s, image_size) is None]
    hosts = sorted({urlparse(s.weights_url).hostname or "" for s in missing})
    for host in hosts:
        if host not in reachable:
            reachable[host] = can_connect(f"https://{host}")
    if all(reachable.get(h) for h in hosts):
        return None
    names = ", ".join(s.name for s in missing)
    where = " or ".join(str(d) for d in keras_cache_dirs())
    return (
        f"ImageNet weights for {names} are not in the Keras cache ({where}) and "
        f"{', '.join(hosts)} cannot be reached from this server, so a job asking for them "
        "would fail."
    )


def uploads_dir(home: Path) -> Path:
    return Layout(home).weights_uploads_dir()


def save_upload(home: Path, name: str, data: bytes) -> Path:
    """Keep an uploaded weights file under the home, named safely; its path."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", Path(name).name).lstrip(".") or "weights.h5"
    folder = uploads_dir(home)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / safe
    with atomic_path(target) as temp:
        temp.write_bytes(data)
    return target


def weights_file(path: str, home: Path) -> tuple[Path | None, str]:
    """A weights file the job may read: (its resolved path, "") or (None, why not).

    Allowed: uploads under the home and files under the data roots; a path elsewhere gets the
    roots' one refusal, whether it exists or not.
    """
    if not path.strip():
        return None, "Weights file: upload one or give its path."
    roots = data_roots(home)
    inside = within_roots(path.strip(), [*roots, uploads_dir(home).resolve()])
    if inside is None:
        shown = ", ".join(f"`{r}`" for r in roots)
        return None, f"Weights file: only files under {shown} can be used; or upload it here."
    if not inside.name.endswith(WEIGHT_SUFFIXES):
        return None, f"Weights file: expected a name ending in {', '.join(WEIGHT_SUFFIXES)}."
    if not inside.is_file():
        return None, f"Weights file: no file at `{inside}`."
    return inside, ""


def file_problem(
    path: Path, specs: list[BackboneSpec], image_size: int, cache: Path
) -> tuple[str | None, str | None]:
    """(Why the job could not load ``path`` into one of ``specs`` at ``image_size``, or None;
    a note when some backbone's shapes could not be worked out, so the job alone will check).

    A size a backbone refuses is left to the form's own message."""
    stat = path.stat()
    stored = _stored(str(path), stat.st_mtime_ns, stat.st_size)
    if isinstance(stored, str):
        return f"Weights file: {stored}.", None
    notes = []
    for spec in specs:
        try:
            spec.check_size(image_size)
        except ConfigError:
            continue
        layout, why = expected(spec.name, image_size, str(cache))
        if layout is None:
            notes.append(why)
            continue
        try:
            check_layout(stored, layout, path)
        except WeightsFileError as error:
            return f"Weights file: {error.reason}.", None
    return None, " ".join(notes) or None


@functools.lru_cache(maxsize=8)
def _stored(path: str, mtime_ns: int, size: int) -> StoredWeights | str:
    """The file's structure, or why it has none; read again only when the file changes (a page
    rerun would otherwise read a large file's metadata each time)."""
    try:
        return read_weights(path)
    except WeightsFileError as error:
        return error.reason


def layout_file(cache: Path, name: str, image_size: int) -> Path:
    """Where the layout of backbone ``name`` at ``image_size`` is kept: per Keras version, as
    the names of a file's groups are Keras' own."""
    version = importlib.metadata.version("keras")
    return cache / LAYOUTS / f"{name}-{image_size}-keras-{version}.json"


@functools.lru_cache(maxsize=64)
def expected(name: str, image_size: int, cache: str) -> tuple[dict[str, Any] | None, str]:
    """(What backbone ``name`` at ``image_size`` asks a weights file for, "") or (None, why it
    could not be worked out). Built once in a subprocess and kept; a failure is remembered for
    the server's life, so a rerun does not start another build."""
    target = layout_file(Path(cache), name, image_size)
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "training.model.weights_file", name, str(image_size)]
        try:
            done = subprocess.run(
                [*command, str(target)],
                capture_output=True,
                text=True,
                cwd=ROOT,
                env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
                timeout=LAYOUT_TIMEOUT_S,
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            return None, _unchecked(name, image_size, str(error))
        if done.returncode or not target.is_file():
            last = (done.stderr.strip().splitlines() or ["no error message"])[-1]
            return None, _unchecked(name, image_size, last)
    return json.loads(target.read_text(encoding="utf-8")), ""


def _unchecked(name: str, image_size: int, why: str) -> str:
    return (
        f"The file's shapes could not be checked against {name} at {image_size} px ({why}); "
        "the job checks them when it loads the file."
    )
