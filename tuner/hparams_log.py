"""TensorBoard HParams logs of a search: one session per trial, viewable with
``tensorboard --logdir $BABYSITTER_HOME/runs/<run>/tb``.

Written without TensorFlow (TensorBoard's own protobufs and event writer), so the logs exist on
either Keras backend; where TensorBoard is not installed the search goes on without them.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

try:
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.plugins.hparams import summary_v2
    from tensorboard.summary.writer.event_file_writer import EventFileWriter
except ImportError:  # pragma: no cover - the GPU machine has no TensorBoard
    summary_v2 = None

METRICS = ("val_accuracy", "val_loss", "accuracy", "loss")


def _plain(value):
    return value if isinstance(value, bool | int | float | str) else str(value)


def log_trial(
    logdir: Path, trial_id: str, hyperparameters: dict, history: list[dict], status: str
) -> None:
    """One HParams session: the trial's hyperparameters, its per-epoch metrics, its status."""
    if summary_v2 is None:
        return
    hparams = {k: _plain(v) for k, v in hyperparameters.items()}
    hparams["status"] = status
    writer = EventFileWriter(str(Path(logdir) / trial_id))
    session = summary_v2.hparams_pb(hparams, trial_id=trial_id)
    writer.add_event(event_pb2.Event(wall_time=time.time(), step=0, summary=session))
    for entry in history:
        values = [
            summary_pb2.Summary.Value(tag=name, simple_value=float(entry[name]))
            for name in METRICS
            if name in entry and math.isfinite(float(entry[name]))
        ]
        event = event_pb2.Event(
            wall_time=time.time(),
            step=int(entry.get("epoch", 0)),
            summary=summary_pb2.Summary(value=values),
        )
        writer.add_event(event)
    writer.close()
