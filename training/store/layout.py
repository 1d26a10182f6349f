"""Where everything lives under ``$BABYSITTER_HOME`` (default ``./babysitter-home``)::

    babysitter.sqlite     the index: runs, epochs, findings, trials, stages, jobs (WAL mode)
    runs/<run_id>/        config.json, events.jsonl (the journal ``runs repair`` replays),
                          phase1.weights.h5, model.keras, history.json, predictions.npz,
                          tb/ (TensorBoard), backup/phase2/ (BackupAndRestore), tuner/ (Keras
                          Tuner's project), export/ (exports), explain/ (heatmaps)
    jobs/<job_id>/        the app's job logs
    datasets/             <digest>/ unpacked archives (each with its ``.complete`` marker),
                          uploads/ archives the app received, being unpacked, and the app's
                          lists: folders.json (folders named on the Datasets page), names.json
                          (uploads' names as their users gave them, by dataset root),
                          forgotten.json (datasets left out of the pickers; their files stay)
    cache/                images-<key>/ decoded images, features-<key>/ backbone features,
                          audits/ audit reports, weights-layouts/ what each backbone asks a
                          weights file for, compiled/ the JAX compilation cache
    weights/              weights files uploaded in the app
    last_launch.json      the app's last launched search settings (the next form's defaults)
    demo/                 the generated demo dataset

Only the store package builds these paths; everything else asks it (``RunStore``, or
``Layout(home)`` for code handed a home folder), so the layout can change in one place. Inside a
folder it hands out, the folder's user names its own entries: the caches in ``cache/`` (the
decoded-image, feature and audit caches in ``training/data`` and ``training/fit``, which take
``cache_dir()`` as their root and may not import the store), ``scan.resolve_dataset`` the
unpacked archives in ``datasets/``, a run's own code the files in its artefact folders.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from training.errors import HomeError, RunNotFoundError

COMPILE_CACHE_VARIABLE = "BABYSITTER_COMPILE_CACHE"
ARTIFACTS = {
    "model": "model.keras",
    "config": "config.json",
    "events": "events.jsonl",
    "phase1": "phase1.weights.h5",
    "predictions": "predictions.npz",
    "history": "history.json",
    "tensorboard": "tb",
    "backup_phase2": "backup/phase2",
    "tuner": "tuner",
    "export": "export",
    "explain": "explain",
}
DATASET_LISTS = ("folders", "names", "forgotten")
"""The app's lists in ``datasets/`` (see above), each ``<name>.json``."""
_ID_RE = re.compile(r"[a-z0-9][a-z0-9-]*")


def scan_runs(home: Path) -> tuple[list[Path], list[Path]]:
    """Folders under ``home/runs`` that hold a run (a plain run id with a ``config.json``), and
    the symbolic links met there (a linked folder, config or journal). Links are never followed:
    another home's run, or ``/etc/passwd`` as a config, is not this home's record."""
    runs = home / "runs"
    if not runs.is_dir():
        return [], []
    folders, links = [], []
    for path in sorted(runs.iterdir()):
        if not _ID_RE.fullmatch(path.name):
            continue
        files = (path / ARTIFACTS["config"], path / ARTIFACTS["events"])
        linked = [path] if path.is_symlink() else [f for f in files if f.is_symlink()]
        if linked:
            links += linked
        elif files[0].is_file():
            folders.append(path)
    return folders, links


def run_folders(home: Path) -> list[Path]:
    """The run folders under ``home/runs`` (see :func:`scan_runs`)."""
    return scan_runs(home)[0]


class Layout:
    """Paths under ``self.home``; nothing is created except the top-level folders on first use.

    ``RunStore`` is one (its home resolved and checked); ``Layout(home)`` gives the same paths for
    a home already resolved, without opening the index (the app's helpers that are handed one).
    """

    home: Path

    def __init__(self, home: Path | str) -> None:
        self.home = Path(home)

    # -- paths --------------------------------------------------------------------------------

    def run_dir(self, run_id: str) -> Path:
        """The run's folder (not created here). Refuses ids that could escape ``runs/``."""
        if not isinstance(run_id, str) or not _ID_RE.fullmatch(run_id):
            raise RunNotFoundError(
                f"Expected a run id like 20261122-211530-resnet50-3f9a. Received: {run_id!r}"
            )
        return self.home / "runs" / run_id

    def artifact(self, run_id: str, name: str) -> Path:
        """Path of a named artefact (see ``ARTIFACTS``); nothing is created."""
        if name not in ARTIFACTS:
            raise ValueError(
                f"Expected an artefact name in {sorted(ARTIFACTS)}. Received: {name!r}"
            )
        return self.run_dir(run_id) / ARTIFACTS[name]

    def run_holding(self, path: Path | str) -> str | None:
        """The id of the run whose folder holds ``path`` (its model, an export), or None when
        ``path`` is not inside this home's ``runs/``."""
        runs = Path(os.path.realpath(self.home / "runs"))
        try:
            parts = Path(os.path.realpath(path)).relative_to(runs).parts
        except ValueError:
            return None
        return parts[0] if parts and _ID_RE.fullmatch(parts[0]) else None

    def _subdir(self, name: str) -> Path:
        """``home/name``, created if missing (see :meth:`_folder`)."""
        return self._folder(self.home / name)

    def _folder(self, path: Path) -> Path:
        """``path``, created if missing; a file in its place is one message (exit 2) that names
        it, never a traceback, and is left as it is."""
        name = path.name
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            problem = (
                "is a file, not a folder"
                if path.exists()
                else f"could not be created ({error.strerror or error})"
            )
            raise HomeError(
                f"{path} {problem}: Babysitter keeps its {name} there. Move or rename "
                "it (nothing was changed), or set $BABYSITTER_HOME to another folder, then run "
                "the same command again."
            ) from error
        return path

    def datasets_dir(self) -> Path:
        """Where uploaded archives are unpacked (created on first use)."""
        return self._subdir("datasets")

    def cache_dir(self) -> Path:
        """Where decoded-image, feature and audit caches live (created on first use)."""
        return self._subdir("cache")

    def compilation_cache_dir(self) -> Path:
        """Where the backend keeps compiled programs between processes (JAX only).

        ``$BABYSITTER_COMPILE_CACHE`` names one folder for several homes (a lab machine, CI):
        compiled programs depend on the program and the machine, never on the runs."""
        shared = os.environ.get(COMPILE_CACHE_VARIABLE)
        return Path(shared) if shared else self.cache_dir() / "compiled"

    def demo_dir(self) -> Path:
        """Where the demo dataset is generated (created on first use)."""
        return self._subdir("demo")

    def jobs_dir(self) -> Path:
        """Where the app's jobs keep their logs (created on first use)."""
        return self._subdir("jobs")

    def archive_uploads_dir(self) -> Path:
        """Where the app keeps an uploaded archive while it is unpacked into ``datasets/``
        (created on first use)."""
        return self._folder(self.datasets_dir() / "uploads")

    def dataset_list_file(self, name: str) -> Path:
        """One of the app's lists of datasets (``DATASET_LISTS``), ``datasets/<name>.json``."""
        if name not in DATASET_LISTS:
            raise ValueError(f"Expected a list name in {DATASET_LISTS}. Received: {name!r}")
        return self.datasets_dir() / f"{name}.json"

    def weights_uploads_dir(self) -> Path:
        """Where weights files uploaded in the app are kept (created on first use)."""
        return self._subdir("weights")

    def last_launch_file(self) -> Path:
        """The app's last launched search settings (not created here)."""
        return self.home / "last_launch.json"
