"""Callbacks that put every epoch into the run store as it finishes (the app reads them live)."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np

from training.atomic import write_h5, write_text
from training.fit.keras_internals import start_fit_at


def clean_metrics(logs: dict | None) -> dict[str, float]:
    """Plain floats (NaN and inf kept: they are findings, not errors)."""
    out = {}
    for key, value in (logs or {}).items():
        try:
            out[key] = float(value)
        except (TypeError, ValueError):
            continue
    return out


def regularized_square(model: keras.Model) -> float | None:
    """Σ w² over the trainable weights an L2 regularizer acts on (None when there are none).

    Logged per epoch (``l2_weights``, and ``l2_weights_start`` before the first step), so a
    diagnosis can tell weights that L2 crushed from weights a too-low rate left alone.
    """
    values = [w for w in model.trainable_weights if getattr(w, "regularizer", None) is not None]
    if not values:
        return None
    return float(sum(np.sum(np.square(keras.ops.convert_to_numpy(w))) for w in values))


class RunLogger(keras.callbacks.Callback):
    """Records ``phase``'s epochs (metrics, learning rate, seconds) and keeps the heartbeat."""

    def __init__(self, store, run_id: str, phase: str):
        super().__init__()
        self.store = store
        self.run_id = run_id
        self.phase = phase
        self.history: list[dict[str, float]] = []
        self._started = self._beat = time.monotonic()
        self._weights_start: float | None = None

    def on_train_begin(self, logs=None):
        self._weights_start = regularized_square(self.model)

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.monotonic()
        self._beat = self._started

    def on_train_batch_end(self, batch, logs=None):
        # Long epochs still look alive to `find_resumable`, at a cost of one write per 30 s.
        if time.monotonic() - self._beat > 30:
            self._beat = time.monotonic()
            self.store.heartbeat(self.run_id)

    def on_epoch_end(self, epoch, logs=None):
        metrics = clean_metrics(logs)
        metrics["seconds"] = round(time.monotonic() - self._started, 3)
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is not None:
            metrics["lr"] = float(keras.ops.convert_to_numpy(optimizer.learning_rate))
        if self._weights_start is not None:
            metrics["l2_weights"] = regularized_square(self.model)
            if not self.history:
                metrics["l2_weights_start"] = self._weights_start
        self.history.append({"epoch": epoch + 1, **metrics})
        self.store.record_epoch(self.run_id, self.phase, epoch + 1, metrics)
        self.store.heartbeat(self.run_id)


class ThrottledBackupAndRestore(keras.callbacks.Callback):
    """Phase 2's checkpoint: the weights and optimizer state, and the epochs done, saved at an
    epoch end at most every ``min_interval_s`` seconds; the next ``fit`` restores it and goes on
    from the next epoch; a ``fit`` that finishes deletes it.

    A full-model checkpoint (weights and optimizer state: ~300 MB for ResNet50) at every epoch
    end doubled the epoch time of a 2,000-image phase 2 on a GPU. The first epoch is always
    saved, then the first epoch end a minute or more after the last checkpoint: a kill loses the
    epoch in progress plus the epochs finished within that minute.

    Each file of a checkpoint is renamed into place only when whole, so a full disk keeps the
    previous checkpoint (and stops the fit with a ``WriteError`` naming the file); a checkpoint
    that does not load anyway is discarded, with a warning, and the phase starts over.

    The files are those of Keras' ``BackupAndRestore`` (``latest.weights.h5`` and
    ``training_metadata.json`` in ``backup_dir``), but the callback is its own: throttling and
    whole-file writes would otherwise override Keras' private saving method.
    """

    WEIGHTS = "latest.weights.h5"
    METADATA = "training_metadata.json"

    def __init__(
        self,
        backup_dir: str,
        min_interval_s: float = 60.0,
        echo: Callable[[str], None] = print,
    ):
        super().__init__()
        self.backup_dir = backup_dir
        self.min_interval_s = min_interval_s
        self.echo = echo
        self._last_save: float | None = None
        self._resumed = False

    @property
    def weights_path(self) -> Path:
        return Path(self.backup_dir) / self.WEIGHTS

    @property
    def metadata_path(self) -> Path:
        return Path(self.backup_dir) / self.METADATA

    def on_train_begin(self, logs=None):
        try:
            epoch = self._restore()
        except (OSError, ValueError, KeyError) as error:  # h5py, Keras, the epoch's JSON
            shutil.rmtree(self.backup_dir, ignore_errors=True)
            self.echo(
                f"warning: the checkpoint in {self.backup_dir} could not be read ({error}); "
                "this phase starts over from its first epoch."
            )
            return
        if epoch is not None:
            start_fit_at(self.model, epoch)
            self._resumed = True

    def _restore(self) -> int | None:
        """Load the checkpoint's weights (and optimizer state); the epochs it had done."""
        if self.weights_path.exists():
            optimizer = self.model.optimizer
            if optimizer is not None and not optimizer.built:  # its variables are saved too
                optimizer.build(self.model.trainable_variables)
            self.model.load_weights(self.weights_path)
        if not self.metadata_path.exists():
            return None
        return int(json.loads(self.metadata_path.read_text())["epoch"])

    def on_epoch_end(self, epoch, logs=None):
        now = time.monotonic()
        if self._last_save is None or now - self._last_save >= self.min_interval_s:
            self.save(epoch + 1)
            self._last_save = now

    def save(self, epochs_done: int) -> None:
        """The checkpoint after ``epochs_done`` epochs: the weights, then the epoch count."""
        write_h5(self.weights_path, lambda temp: self.model.save_weights(str(temp)))
        write_text(self.metadata_path, json.dumps({"epoch": epochs_done, "batch": 0}))

    def on_train_end(self, logs=None):
        if self._resumed:  # a later fit of this model starts where its caller says
            start_fit_at(self.model, None)
            self._resumed = False
        if Path(self.backup_dir).exists():
            shutil.rmtree(self.backup_dir)
