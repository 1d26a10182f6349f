"""The Keras Tuner whose trial trains a head on cached features: one trial at a time here,
a stage's trials as one program in :mod:`tuner.batched_stage` (which subclasses it).

Apart from :mod:`tuner.search` so that the batched tuner builds on it without importing the
search that chooses between the two.
"""

from __future__ import annotations

import json
from pathlib import Path

import keras_tuner as kt

from training.atomic import write_text
from training.errors import ConfigError
from tuner.heads import HeadHyperparameters, HeadResult, HeadTrainer, trial_seed
from tuner.kt_internals import tuner_file
from tuner.oracles import HISTORY_FILE, last_line
from tuner.resume import save_state


class TrialNotReported(RuntimeError):
    """A trial ran, but its result did not reach the oracle (Keras Tuner caught the error)."""

    def __init__(self, trial_id: str, message: str | None):
        why = last_line(message) or "no reason given"
        super().__init__(f"Trial {trial_id}'s result did not reach the oracle: {why}")


class Unexpected(kt.errors.FatalError):
    """Carries an error a trial met that is not the trial's own failure out of Keras Tuner,
    which lets only a ``FatalError`` through (any other it prints and records as the trial's)."""

    def __init__(self, error: Exception):
        super().__init__(str(error))
        self.error = error


class HeadTuner(kt.Tuner):
    """A Keras Tuner whose trial trains a head on cached features (no model built per trial).

    A head that explodes is a failed trial whose message is its one-line reason, with no
    traceback on the terminal; any other error (a full disk, a bug) stops the search as itself,
    the trial left to be redone, as a kill would.
    """

    def __init__(
        self, oracle, trainers: dict[str, HeadTrainer], epochs: int, details_dir: Path, **kwargs
    ):
        super().__init__(oracle=oracle, hypermodel=None, **kwargs)
        self.trainers = trainers
        self.epochs = epochs
        self.details_dir = details_dir  # the chief's project folder, where its oracle reads them
        self.failures: dict[str, str] = {}  # trial id -> why it failed, until on_trial_end

    def search(self, *fit_args, **fit_kwargs):
        try:
            super().search(*fit_args, **fit_kwargs)
            return
        except Unexpected as stop:
            error = stop.error
        raise error  # outside the handler: the error as the trial raised it, cause and all

    def run_trial(self, trial, *args, **kwargs):
        try:
            return self._train_head(trial)
        except Exception as error:
            raise Unexpected(error) from error

    def on_trial_end(self, trial):
        """End the trial as failed if its head exploded: the trial ran (its metrics are
        reported) but Keras Tuner ranks only completed ones. A trial Keras Tuner marked invalid
        met an error while reporting to the oracle (a lost chief): it is not ended here but
        left to be redone."""
        reason = self.failures.pop(trial.trial_id, None)
        if reason is not None:
            trial.status = kt.engine.trial.TrialStatus.FAILED
            trial.message = reason
        elif trial.status == kt.engine.trial.TrialStatus.INVALID:
            raise TrialNotReported(trial.trial_id, trial.message)
        super().on_trial_end(trial)

    def _train_head(self, trial) -> dict[str, float]:
        backbone, hp, epochs, seed = self.head_job(trial)
        return self.report(trial, backbone, self.trainers[backbone].train(hp, epochs, seed=seed))

    def head_job(self, trial) -> tuple[str, HeadHyperparameters, int, int]:
        """What ``trial`` trains: its backbone, head hyperparameters, epochs and seed (from the
        trial's identity, so it is the same alone, in a population or redone after a kill)."""
        values = trial.hyperparameters.values
        backbone = values.get("backbone") or next(iter(self.trainers))
        epochs = int(values.get("tuner/epochs", self.epochs))
        stage = getattr(self.oracle, "stage", 1)
        seed = trial_seed(self.trainers[backbone].seed, stage, trial.trial_id)
        return backbone, HeadHyperparameters.from_values(values), epochs, seed

    def report(self, trial, backbone: str, result: HeadResult) -> dict[str, float]:
        """Write ``trial``'s details where the oracle reads them; its metrics for the oracle."""
        details = {
            "history": result.history,
            "seconds": result.seconds,
            "backbone": backbone,
            "tuner_id": self.tuner_id,
        }
        if result.exploded:
            e = result.exploded
            details["error"] = (
                f"loss exploded to {e['loss']:.3g} at epoch {e['epoch']} "
                f"(learning rate {e['learning_rate']:.3g})"
            )
        trial_dir = self.details_dir / f"trial_{trial.trial_id}"
        write_text(trial_dir / HISTORY_FILE, json.dumps(details))
        if result.exploded:
            self.failures[trial.trial_id] = details["error"]
        last = result.history[-1]
        return {
            "val_accuracy": result.val_accuracy,
            "val_loss": result.val_loss,
            "accuracy": last.get("accuracy", 0.0),
            "loss": last.get("loss", 0.0),
        }

    def on_search_begin(self):
        """Save the project before its first trial (Keras Tuner does so only for a chief): a
        stage is reloaded only when its tuner file exists, which Keras Tuner first writes after
        a trial ended, so a kill just before that write started the stage over."""
        self.save()

    def save(self):
        """Keras Tuner's save, with files a kill cannot leave half-written. A worker's oracle
        is the chief's, behind gRPC: the chief saves it."""
        if isinstance(self.oracle, kt.Oracle):
            self.oracle.save()
        save_state(self.get_state(), tuner_file(self))

    def save_model(self, trial_id, model, step=0):  # heads are retrained by the fine-tune
        pass

    def load_model(self, trial):
        raise ConfigError(
            "A search keeps fine-tuned models, not per-trial heads: use the search run's model "
            "(`python -m training predict RUN ...`)."
        )
