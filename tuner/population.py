"""A stage's head trials as one program: heads stacked and trained together.

Every head trial of a stage trains a small head on the same cached features; trials differ only
in a few numbers. So a batch of trials trains as one population (``tuner.population_program``):
sections of heads stacked by hidden width, one shared feature batch per step, one batched
forward/backward and one fused optimizer update per section. What differs per head is data:

- learning rate (its schedule's rate for the epoch), L2, dropout rate, label smoothing and the
  optimizer kind (Adam, AdamW, SGD with Nesterov momentum), each head with its own moments;
- width: units past a head's own ``head_units`` are masked (zero weights, zero gradient), so a
  head trains exactly as if its layer were its own width, inside a wider section;
- dropout masks come from ``tuner.counter_random`` keyed by (trial seed, step), initial weights
  from ``tuner.heads.initial_kernels`` seeded by the trial, batches from the trainer's per-epoch
  order: the draws ``HeadTrainer`` makes for the trial alone, so a trial's history is the same
  (within float tolerance) whether it ran alone or in a population;
- an exploding head (data loss past 3× ln C, as ``HeadTrainer``) is recorded at the epoch it
  exploded, zeroed and trained at rate 0 from then on; the others go on.

Which compiled program (layout) a batch runs in is ``tuner.population_plan``'s choice.
"""

from __future__ import annotations

import math
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from keras import ops

from training.babysit.thresholds import EXPLOSION_FACTOR
from training.fit.schedules import schedule_rate
from tuner.compiled import compile_program
from tuner.heads import (
    HeadHyperparameters,
    HeadResult,
    HeadTrainer,
    epoch_order,
    initial_kernels,
    validation_metrics,
)
from tuner.population_plan import (
    PRIOR_SECONDS_PER_WORK,
    PRIOR_SECTION_COMPILE_S,
    choose,
    layout_work,
    width_bucket,
)
from tuner.population_program import Layout, epoch_program

MAX_STACKED = 2**24
"""Values in one stacked kernel at most (64 MB of float32; with moments, gradients and
temporaries a section stays within a few hundred MB): bounds the heads of a section."""

MAX_HEADS = 64
ADAMW_DECAY = 1e-4
"""``make_optimizer``'s AdamW weight decay."""
OPTIMIZER_KINDS = ("adam", "adamw", "sgd")


@dataclass
class HeadJob:
    """One trial to train: its hyperparameters, epochs and seed (as ``HeadTrainer.train``)."""

    hp: HeadHyperparameters
    epochs: int
    seed: int


class PopulationTrainer:
    """Trains many heads at once on one :class:`HeadTrainer`'s features, data and seed."""

    def __init__(self, trainer: HeadTrainer):
        self.trainer = trainer
        self.features = trainer.train_x.shape[1]
        self.classes = trainer.num_classes
        self.batch = trainer.batch_size
        self.rows = len(trainer.train_x)
        self.steps = max(1, math.ceil(self.rows / self.batch))
        weights = trainer.sample_weights
        self.row_weights = np.ones(self.rows, "float32") if weights is None else weights
        self._data: dict | None = None
        self._epochs: dict[int, dict] = {}
        self._programs: dict[Layout, Callable] = {}
        self._seconds_per_work: float | None = None
        self._compiles: list[float] = []

    @property
    def compiled_programs(self) -> int:
        return len(self._programs)

    def max_heads(self, width: int) -> int:
        widest = self.features * (width or self.classes)  # the largest stacked kernel, per head
        return max(1, min(MAX_HEADS, MAX_STACKED // widest))

    def train(
        self, jobs: list[HeadJob], done: Callable[[int, HeadResult], None] | None = None
    ) -> list[HeadResult]:
        """Each job's :class:`HeadResult`, in order; ``done(index, result)`` is called for each
        job as soon as its round of the program has finished."""
        if not jobs:
            return []
        buckets = [width_bucket(job.hp.head_units) for job in jobs]
        per_section = PRIOR_SECTION_COMPILE_S
        if self._compiles:
            per_section = sum(self._compiles) / len(self._compiles)
        layout, rounds = choose(
            buckets,
            self._programs,
            self.max_heads,
            max(job.epochs for job in jobs),
            self._layout_s,
            per_section,
        )
        results: list[HeadResult | None] = [None] * len(jobs)
        for sections in rounds:
            trained = self._round(layout, [[jobs[i] for i in slot] for slot in sections])
            for slot, section in zip(sections, trained, strict=True):
                for index, result in zip(slot, section, strict=True):
                    results[index] = result
                    if done is not None:
                        done(index, result)
        return results  # type: ignore[return-value]

    def _layout_s(self, layout: Layout) -> float:
        """Seconds of one epoch of ``layout``, from the timed ones."""
        work = layout_work(layout, self.features, self.classes, self.batch) * self.steps
        return work * (self._seconds_per_work or PRIOR_SECONDS_PER_WORK)

    # -- one round of a program --------------------------------------------------------------------

    def _round(self, layout: Layout, sections: list[list[HeadJob]]) -> list[list[HeadResult]]:
        """Train each section's jobs (padded with idle heads) over their epochs."""
        started = time.perf_counter()
        real = [len(jobs) for jobs in sections]
        padded = [
            jobs + [HeadJob(jobs[0].hp if jobs else HeadHyperparameters(), 0, 0)] * (k - len(jobs))
            for jobs, (_, k) in zip(sections, layout, strict=True)
        ]  # an idle head is never alive: it trains at rate 0 and its result is unused
        everyone = [(s, h, job) for s, jobs in enumerate(padded) for h, job in enumerate(jobs)]
        state = tuple(
            self._initial_state(jobs, width)
            for jobs, (width, _) in zip(padded, layout, strict=True)
        )
        fixed = [self._hyper(jobs, width) for jobs, (width, _) in zip(padded, layout, strict=True)]
        program, new = self._program(layout)
        results = [[HeadResult() for _ in jobs] for jobs in padded]
        alive = {(s, h): job.epochs > 0 for s, h, job in everyone}
        limit = EXPLOSION_FACTOR * math.log(self.classes)
        calls = []
        for epoch in range(max(job.epochs for _, _, job in everyone)):
            for s, h, job in everyone:
                alive[s, h] = alive[s, h] and epoch < job.epochs
            rates = [
                np.array(
                    [schedule_rate(j.hp.schedule, j.hp.lr, epoch, j.epochs) for j in jobs],
                    "float64",
                )
                for jobs in padded
            ]
            hyper = tuple(
                {**fixed[s], "lr": ops.convert_to_tensor(self._live_rates(rates[s], alive, s))}
                for s in range(len(layout))
            )
            called = time.perf_counter()
            step0 = ops.convert_to_tensor(np.int32(epoch * self.steps))
            state, sums, val_logits, penalties = program(
                state, hyper, self._batches(epoch), step0, self._device_data()
            )
            sums = [ops.convert_to_numpy(t).astype("float64") for t in sums]
            val = None if val_logits is None else [ops.convert_to_numpy(t) for t in val_logits]
            penalties = [ops.convert_to_numpy(t).astype("float64") for t in penalties]
            calls.append(time.perf_counter() - called)
            exploded: dict[int, list[int]] = {}
            for s, h, _ in everyone:
                if not alive[s, h]:
                    continue
                logs = {
                    "accuracy": sums[s][h, 1] / self.rows,
                    "data_loss": sums[s][h, 2] / self.rows,
                    "loss": sums[s][h, 0] / self.rows,
                }
                if val is not None:
                    logs.update(validation_metrics(val[s][h], self.trainer.val_y, penalties[s][h]))
                rate = float(rates[s][h])
                results[s][h].history.append({"epoch": epoch + 1, **logs, "lr": rate})
                loss = logs["data_loss"]
                if not math.isfinite(loss) or loss > limit:
                    results[s][h].exploded = {
                        "epoch": epoch + 1,
                        "loss": loss,
                        "learning_rate": rate,
                    }
                    alive[s, h] = False
                    exploded.setdefault(s, []).append(h)
            if exploded:  # their weights may be inf or NaN: zeros, trained at rate 0 from now on
                state = _zeroed(state, exploded)
        self._timed(layout, calls, new)
        share = (time.perf_counter() - started) / max(1, sum(real))
        kept = [section[:n] for section, n in zip(results, real, strict=True)]
        for result in (r for section in kept for r in section):
            finite = [h for h in result.history if math.isfinite(h.get("val_accuracy", math.nan))]
            if finite:
                best = max(finite, key=lambda h: h["val_accuracy"])
                result.val_accuracy, result.val_loss = best["val_accuracy"], best["val_loss"]
            result.seconds = share
        return kept

    @staticmethod
    def _live_rates(rates: np.ndarray, alive: dict, section: int) -> np.ndarray:
        live = np.array([alive[section, h] for h in range(len(rates))])
        return np.where(live, rates, 0.0).astype("float32")

    def _timed(self, layout: Layout, calls: list[float], new: bool) -> None:
        """Note what a unit of work costs per epoch, and what compiling costs."""
        steady = calls[1:] if new else calls
        if not steady:
            return
        work = layout_work(layout, self.features, self.classes, self.batch) * self.steps
        self._seconds_per_work = min(steady) / work
        if new:  # per section, as compile_seconds counts them
            self._compiles.append(max(0.0, calls[0] - min(steady)) / (len(layout) + 0.5))

    def _initial_state(self, jobs: list[HeadJob], width: int):
        """Each head's fresh kernels (``initial_kernels``, the draws ``HeadTrainer`` makes),
        zero biases, zero moments; padded to the section's width with zeros."""
        heads, d, c = len(jobs), self.features, self.classes
        logits = np.zeros((heads, width or d, c), "float32")
        hidden = np.zeros((heads, d, width), "float32") if width else None
        for h, job in enumerate(jobs):
            if not job.epochs:
                continue  # an idle head: zeros
            kernel, top = initial_kernels(job.hp.head_units, job.seed, d, c)
            logits[h, : len(top)] = top
            if hidden is not None:
                hidden[h, :, : kernel.shape[1]] = kernel
        params = [logits, np.zeros((heads, c), "float32")]
        if hidden is not None:
            params = [hidden, np.zeros((heads, width), "float32"), *params]
        return tuple(
            tuple(ops.convert_to_tensor(p if first else np.zeros_like(p)) for p in params)
            for first in (True, False, False)
        )

    def _hyper(self, jobs: list[HeadJob], width: int) -> dict:
        """The per-head knobs that stay fixed over the epochs."""
        smoothing = np.array([j.hp.label_smoothing for j in jobs], "float64")
        for job in jobs:
            if job.hp.optimizer not in OPTIMIZER_KINDS:
                raise ValueError(
                    f"Expected an optimizer in {OPTIMIZER_KINDS}. Received: {job.hp.optimizer!r}."
                )
        values = {
            "l2": np.array([j.hp.l2 for j in jobs], "float32"),
            "rate": np.array([j.hp.dropout for j in jobs], "float32"),
            # The soft targets as HeadTrainer._targets makes them: onehot·(1-s) + s/C.
            "keep": (1 - smoothing).astype("float32"),
            "spread": (smoothing / self.classes).astype("float32"),
            "decay": np.array(
                [ADAMW_DECAY if j.hp.optimizer == "adamw" else 0.0 for j in jobs], "float32"
            ),
            "sgd": np.array([j.hp.optimizer == "sgd" for j in jobs], "float32"),
            "seed": np.array([j.seed for j in jobs], "int64").astype("int32"),
        }
        if width:
            units = np.array([j.hp.head_units for j in jobs])
            values["mask"] = (np.arange(width)[None, :] < units[:, None]).astype("float32")
        return {k: ops.convert_to_tensor(v) for k, v in values.items()}

    def _batches(self, epoch: int) -> dict:
        """The epoch's batches as row indices (the last one padded), each row's loss weight
        (its class weight), whether it is real (0 for padding) and each batch's real size.
        As in Keras, the class weights weigh the loss, not the metrics (``metrics=``, not
        ``weighted_metrics=``)."""
        if epoch not in self._epochs:
            order = epoch_order(self.trainer.seed, epoch, self.rows)
            padded = np.zeros(self.steps * self.batch, "int64")
            padded[: self.rows] = order
            real = np.zeros(self.steps * self.batch, "float32")
            real[: self.rows] = 1.0
            weights = real * self.row_weights[padded]
            shape = (self.steps, self.batch)
            self._epochs[epoch] = {
                "idx": ops.convert_to_tensor(padded.reshape(shape).astype("int32")),
                "weight": ops.convert_to_tensor(weights.reshape(shape)),
                "real": ops.convert_to_tensor(real.reshape(shape)),
                "count": ops.convert_to_tensor(real.reshape(shape).sum(axis=1)),
            }
        return self._epochs[epoch]

    def _device_data(self) -> dict:
        if self._data is None:
            t = self.trainer
            self._data = {
                "x": ops.convert_to_tensor(t.train_x),
                "onehot": ops.convert_to_tensor(np.eye(self.classes, dtype="float32")[t.train_y]),
                "labels": ops.convert_to_tensor(t.train_y.astype("int32")),
            }
            if len(t.val_x):
                self._data["val_x"] = ops.convert_to_tensor(t.val_x)
        return self._data

    def _program(self, layout: Layout) -> tuple[Callable, bool]:
        """The compiled epoch for ``layout``, and whether it is new."""
        if layout in self._programs:
            return self._programs[layout], False
        fn = epoch_program(layout, self.steps, validate=len(self.trainer.val_x) > 0)
        self._programs[layout] = compile_program(fn, donate=(0,))
        return self._programs[layout], True


_POPULATIONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def population_of(trainer: HeadTrainer) -> PopulationTrainer:
    """The one :class:`PopulationTrainer` of ``trainer``: its compiled programs serve every
    stage of a search."""
    if trainer not in _POPULATIONS:
        _POPULATIONS[trainer] = PopulationTrainer(trainer)
    return _POPULATIONS[trainer]


def _zeroed(state, exploded: dict[int, list[int]]):
    """``state`` with the given heads (section → rows) set to zero, weights and moments."""

    def zero(tensor, rows):
        array = np.array(ops.convert_to_numpy(tensor))
        array[rows] = 0
        return ops.convert_to_tensor(array)

    return tuple(
        tuple(tuple(zero(t, exploded[s]) for t in group) for group in section)
        if s in exploded
        else section
        for s, section in enumerate(state)
    )
