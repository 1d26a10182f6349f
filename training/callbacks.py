"""Callbacks that put every epoch into the run store as it finishes (the app reads them live)."""

from __future__ import annotations

import math
import time

import keras


def clean_metrics(logs: dict | None) -> dict[str, float]:
    """Plain floats (NaN and inf kept: they are findings, not errors)."""
    out = {}
    for key, value in (logs or {}).items():
        try:
            out[key] = float(value)
        except (TypeError, ValueError):
            continue
    return out


class RunLogger(keras.callbacks.Callback):
    """Records ``phase``'s epochs (metrics, learning rate, seconds) and keeps the heartbeat."""

    def __init__(self, store, run_id: str, phase: str):
        super().__init__()
        self.store = store
        self.run_id = run_id
        self.phase = phase
        self.history: list[dict[str, float]] = []
        self._started = self._beat = time.monotonic()

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
        self.history.append({"epoch": epoch + 1, **metrics})
        self.store.record_epoch(self.run_id, self.phase, epoch + 1, metrics)
        self.store.heartbeat(self.run_id)


def diverged(history: list[dict[str, float]]) -> bool:
    """Whether the last recorded training loss is NaN or infinite."""
    return bool(history) and not math.isfinite(history[-1].get("loss", 0.0))
