"""Every private part of Keras Tuner the search uses, in this one module (issue 23).

The search works through Keras Tuner's public hooks (``Tuner.run_trial``, ``on_trial_end``,
``on_search_begin``, ``save``; ``Oracle.end_trial`` under ``keras_tuner.synchronized``,
``set_state``, ``reload``). Keras Tuner 1.4 has none for what is below, so each use is here,
with why, and ``tests/test_private_pins.py`` checks each against the installed Keras Tuner: an
upgrade that renames or changes one fails there first, naming it, instead of in a search.

- Where a project's files are: the trial files, ``oracle.json`` and the tuner's file are named by
  private methods (``_get_trial_dir``, ``_get_oracle_fname``, ``_get_tuner_fname``) under the
  private ``_project_dir`` (an oracle's public ``directory`` and ``project_name`` stay ``None``).
- How they are written: Keras Tuner rewrites them in place, so a kill in the middle of a write
  left half a file; ``_save_trial`` is the only place to write a trial file whole instead.
- How long a worker waits on the chief: ``oracle_client.TIMEOUT``, a module constant.
"""

from __future__ import annotations

from pathlib import Path

from tuner.resume import save_state


class AtomicProjectFiles:
    """Oracle mixin: ``oracle.json`` and every ``trial.json`` written whole (``save_state``)."""

    def save(self):
        save_state(self.get_state(), self._get_oracle_fname())

    def _save_trial(self, trial):  # called by create_trial, update_trial and end_trial
        save_state(trial.get_state(), Path(self._get_trial_dir(trial.trial_id)) / "trial.json")


def project_dir(oracle) -> Path:
    """The folder of ``oracle``'s project, where its trial folders are."""
    return Path(oracle._project_dir)


def tuner_file(tuner) -> Path:
    """``tuner``'s state file: Keras Tuner reloads a project only when this file exists."""
    return Path(tuner._get_tuner_fname())


def set_rpc_timeout(seconds: float) -> None:
    """A worker's wait on the chief per gRPC request, in seconds (Keras Tuner's: an hour)."""
    # Imported here, as Keras Tuner does, so that only a worker loads gRPC and protobuf.
    from keras_tuner.src.distribute import oracle_client

    oracle_client.TIMEOUT = seconds
