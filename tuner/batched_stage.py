"""A stage's head trials run as populations, with Keras Tuner still the oracle.

Only the execution is batched; the bookkeeping is Keras Tuner's, through its public hooks:

- trials are created by ``Oracle.create_trial``, one per tuner id ``<tuner id>-<slot>`` (an
  oracle hands one ongoing trial per tuner id, so a batch of N trials takes N ids);
- they train together (``tuner.population``), grouped by backbone and hidden-width bucket;
- as each population finishes, each of its trials is reported (``Oracle.update_trial``),
  marked completed and ended (``HeadTuner.on_trial_end``: an exploded head ends as failed),
  which writes its Keras Tuner files and its one row in the run store, as a serial trial does;
- a kill leaves the batch's unfinished trials listed as ongoing: the reload
  (``RecordingMixin.set_state``) queues them for retry and the next batch's ``create_trial``
  hands them out again, while every trial ended before the kill is kept.

How many trials a batch asks for follows the oracle: random search proposes without looking
at results, so a whole stage is one batch; Bayesian optimization proposes at random until it
has ``num_initial_points`` completed trials, so a batch stops there and then it proposes one
trial at a time, as it would serially. Hyperband promotes trials round by round as each one
finishes; batched, it would open new brackets instead, so it runs serially (:func:`serial_reason`).
"""

from __future__ import annotations

from collections.abc import Callable

import keras_tuner as kt

from tuner.compiled import BACKENDS, can_compile
from tuner.head_tuner import HeadTuner, TrialNotReported
from tuner.population import HeadJob, population_of

_STATUS = kt.engine.trial.TrialStatus


def serial_reason(tuner: str, role: str | None) -> str | None:
    """Why a search asked to batch its trials must run them one at a time, or None."""
    if role:
        return (
            "a distributed search's workers each take one trial at a time from the chief "
            "(Keras Tuner's protocol)"
        )
    if tuner == "hyperband":
        return (
            "Hyperband promotes trials round by round as each one finishes; batched, it would "
            "open new brackets instead"
        )
    if not can_compile():
        import keras

        return (
            f"batched trials compile with {' or '.join(BACKENDS)}; this is "
            f"{keras.backend.backend()}"
        )
    return None


def proposals_without_results(oracle) -> int | None:
    """How many trials ``oracle`` proposes before it needs a result (None: no limit)."""
    if isinstance(oracle, kt.oracles.BayesianOptimizationOracle):
        completed = sum(str(t.status) == "COMPLETED" for t in oracle.trials.values())
        dimensions = len(oracle.hyperparameters.space)
        initial = oracle.num_initial_points or max(3 * dimensions, 3)
        return max(1, initial - completed)
    return None


class BatchedHeadTuner(HeadTuner):
    """A :class:`HeadTuner` whose ``search`` trains the oracle's trials in populations."""

    def search(self, *fit_args, verbose=0, **fit_kwargs):
        """Keras Tuner's search loop, a batch of trials at a time."""
        self.oracle.verbose = verbose
        self.on_search_begin()
        while True:
            batch = self._create_batch()
            if batch is None:
                break
            self._run_batch(batch)
        self.on_search_end()

    def _create_batch(self) -> list | None:
        """The trials the oracle hands out now; None once it has stopped and handed none."""
        limit = proposals_without_results(self.oracle)
        batch = []
        while limit is None or len(batch) < limit:
            self.pre_create_trial()
            trial = self.oracle.create_trial(f"{self.tuner_id}-{len(batch)}")
            if trial.status != _STATUS.RUNNING:  # STOPPED, or IDLE: waiting for results
                if trial.status == _STATUS.STOPPED and not batch:
                    return None
                break
            batch.append(trial)
        return batch

    def _run_batch(self, batch: list) -> None:
        by_backbone: dict[str, list] = {}
        for trial in batch:
            self.on_trial_begin(trial)
            backbone, hp, epochs, seed = self.head_job(trial)
            by_backbone.setdefault(backbone, []).append((trial, HeadJob(hp, epochs, seed)))
        for backbone, pairs in by_backbone.items():
            trials = [trial for trial, _ in pairs]
            population_of(self.trainers[backbone]).train(
                [job for _, job in pairs], done=self._ender(trials, backbone)
            )

    def _ender(self, trials: list, backbone: str) -> Callable:
        def end(index: int, result) -> None:
            trial = trials[index]
            metrics = self.report(trial, backbone, result)
            try:
                self.oracle.update_trial(trial.trial_id, metrics)
            except Exception as error:  # as Keras Tuner: the trial is left to be redone
                raise TrialNotReported(trial.trial_id, str(error)) from error
            trial.status = _STATUS.COMPLETED
            self.on_trial_end(trial)

        return end
