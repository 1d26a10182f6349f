"""Every private part of Keras that ``training`` uses, in this one module (issue 23).

Keras 3 has no public way for a callback to say at which epoch the ``fit`` it is in starts:
``fit(initial_epoch=…)`` is fixed by the caller, and a checkpoint is only read in
``on_train_begin``. Keras' own ``BackupAndRestore`` sets the model's private ``_initial_epoch``,
which ``fit`` reads just after ``on_train_begin`` (every backend's trainer), and so does
``ThrottledBackupAndRestore`` here. ``tests/test_private_pins.py`` checks it against the
installed Keras under each backend, so an upgrade that changes it fails there first.
"""

from __future__ import annotations

import keras


def start_fit_at(model: keras.Model, epoch: int | None) -> None:
    """The ``fit`` now in ``on_train_begin`` runs from ``epoch`` (0-based: ``epoch`` epochs
    are done); ``None``: from the ``initial_epoch`` its caller gave (Keras keeps the value for
    every later ``fit`` of the model otherwise)."""
    model._initial_epoch = epoch
