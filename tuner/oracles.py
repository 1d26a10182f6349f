"""Keras Tuner oracles that also write every finished trial into the run store.

The oracle is the one place every trial passes through, in one process or as the chief of a
distributed search (workers report to it over gRPC), so recording there gives the same
bookkeeping either way. A worker writes each trial's per-epoch history next to Keras Tuner's own
trial file; the oracle reads it when the trial ends.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import keras_tuner as kt

from training.store import RunStore
from training.store.trials import record_trial, trials
from tuner import hparams_log
from tuner.kt_internals import AtomicProjectFiles, project_dir

HISTORY_FILE = "babysitter_trial.json"
OBJECTIVE = kt.Objective("val_accuracy", direction="max")
_STATUS = {"COMPLETED": "completed", "FAILED": "failed", "INVALID": "invalid"}


class RecordingMixin(AtomicProjectFiles):
    """``end_trial`` also records the trial (status, hyperparameters, score, history, time);
    Keras Tuner's files are written whole (:class:`tuner.kt_internals.AtomicProjectFiles`)."""

    store: RunStore | None = None
    run_id: str | None = None
    stage: int = 1

    # A chief's oracle serves its workers from gRPC threads: the trial is recorded under the
    # oracle's lock, as Keras Tuner ends it, so no other request sees it half recorded.
    @kt.synchronized
    def end_trial(self, trial):
        result = super().end_trial(trial)
        if self.store is not None and self.run_id is not None:
            self._record(trial)
        return result

    def set_state(self, state):
        """Resume keeping every trial that ended before a kill and redoing every other one.

        Keras Tuner's files can disagree after a kill: ``end_trial`` writes the trial's file,
        then ``oracle.json`` with the trial still listed as ongoing (dropped only at the next
        save), and the store's row comes last. A reload retries the trials listed as ongoing,
        so a finished one would run again, and one whose file alone says it ended would be
        neither rerun nor recorded. The trial files decide here (``reload`` reads them before
        it sets ``oracle.json``'s state): an ended trial is kept, any other is retried, and
        none is left ongoing for ``reload`` to queue a second time.
        """
        ended = [t for t in sorted(self.trials) if self._ended(t)]
        super().set_state(
            {
                **state,
                "end_order": state["end_order"] + [t for t in ended if t not in state["end_order"]],
                "retry_queue": [t for t in sorted(self.trials) if t not in ended],
                "ongoing_trials": {},
            }
        )

    def reload(self):
        """Keras Tuner's reload (see :meth:`set_state`); an ended trial the store missed is
        recorded now."""
        super().reload()
        if self.store is None or self.run_id is None:
            return
        stored = {t["trial_id"] for t in trials(self.store, self.run_id, self.stage)}
        for trial_id in filter(self._ended, sorted(self.trials)):
            if f"s{self.stage}-{trial_id}" not in stored:
                self._record(self.trials[trial_id])

    def _ended(self, trial_id: str) -> bool:
        return str(self.trials[trial_id].status) in _STATUS

    def _record(self, reported) -> None:
        # The oracle's own copy holds the metrics a worker sent over gRPC; the trial a worker
        # passes to ``end_trial`` may carry only its status.
        trial = self.trials.get(reported.trial_id, reported)
        trial.status = reported.status
        trial.message = reported.message or trial.message
        status = _STATUS.get(str(trial.status), "invalid")
        details = _read_details(project_dir(self) / f"trial_{trial.trial_id}")
        score = None
        if status == "completed":
            score = trial.score
            if score is None and trial.metrics.exists(OBJECTIVE.name):
                score = trial.metrics.get_best_value(OBJECTIVE.name)
        error = None
        if status != "completed":
            error = details.get("error") or last_line(trial.message)
        values = {
            k: v for k, v in trial.hyperparameters.values.items() if not k.startswith("tuner/")
        }
        history = details.get("history", [])
        hparams_log.log_trial(
            self.store.artifact(self.run_id, "tensorboard") / "hparams",
            f"s{self.stage}-{trial.trial_id}",
            {**values, "stage": self.stage},
            history,
            status,
        )
        record_trial(
            self.store,
            self.run_id,
            f"s{self.stage}-{trial.trial_id}",
            self.stage,
            status,
            values,
            None if score is None or not math.isfinite(score) else float(score),
            history,
            float(details.get("seconds", 0.0)),
            error,
        )


def _read_details(folder: Path) -> dict:
    try:
        return json.loads((folder / HISTORY_FILE).read_text())
    except (OSError, ValueError):
        return {}


def last_line(message: str | None) -> str | None:
    lines = [line for line in (message or "").strip().splitlines() if line.strip()]
    return lines[-1] if lines else None


class RecordingRandomSearch(RecordingMixin, kt.oracles.RandomSearchOracle):
    pass


class RecordingHyperband(RecordingMixin, kt.oracles.HyperbandOracle):
    pass


class RecordingBayesian(RecordingMixin, kt.oracles.BayesianOptimizationOracle):
    pass


def make_oracle(
    kind: str,
    hyperparameters: kt.HyperParameters,
    max_trials: int,
    max_epochs: int,
    seed: int,
    store: RunStore | None = None,
    run_id: str | None = None,
    stage: int = 1,
) -> kt.Oracle:
    """A recording oracle of ``kind`` over exactly ``hyperparameters``; failed trials never end
    the search (each is recorded and the next one starts)."""
    common = dict(
        objective=OBJECTIVE,
        hyperparameters=hyperparameters,
        allow_new_entries=False,
        tune_new_entries=False,
        seed=seed,
        max_consecutive_failed_trials=max_trials + 1,
        max_retries_per_trial=0,
    )
    if kind == "hyperband":
        # Hyperband decides the epochs of each trial; ``max_trials`` bounds nothing there, so the
        # number of brackets is sized to it: one iteration with factor 3.
        oracle = RecordingHyperband(max_epochs=max(max_epochs, 2), factor=3, **common)
    elif kind == "bayesian":
        oracle = RecordingBayesian(max_trials=max_trials, **common)
    else:
        oracle = RecordingRandomSearch(max_trials=max_trials, **common)
    oracle.store, oracle.run_id, oracle.stage = store, run_id, stage
    return oracle
