"""Head trials at the speed of a few matrix products: one compiled model per head shape, reused.

Plain Keras Tuner builds, compiles and traces a new model every trial, and runs the backbone
every epoch. Here the backbone ran once (features are cached) and a trial only trains a small
head. What is left to kill is per-trial overhead, so every hyperparameter that does not change
the shapes lives in a variable or in the data, not in the compiled graph:

- learning rate: the optimizer's variable, set per epoch by the schedule;
- dropout rate and L2 strength: non-trainable variables of the head's own layers;
- label smoothing: soft targets computed in NumPy;
- fresh initial weights and optimizer state: assigned, not rebuilt.

- head width: a mask over a hidden layer of the widest size.

Only (hidden layer or not, optimizer) picks a compiled model, so a search compiles at most six
per backbone (one trainer each); ``steps_per_execution`` runs a whole epoch in one compiled call.

This is ``--trial-execution serial``; ``tuner.population`` trains a stage's heads together. A
trial draws the same numbers either way: initial weights from its seed (``initial_kernels``),
dropout masks keyed by (seed, step) (``tuner.counter_random``), and each epoch's batch order
from the search's seed (``epoch_order``, one ``fit`` per epoch), the same for every trial.
"""

from __future__ import annotations

import math
import time
import zlib
from dataclasses import dataclass, field

import keras
import numpy as np

from training.babysit.thresholds import EXPLOSION_FACTOR
from training.fit.optimizers import make_optimizer
from training.fit.schedules import schedule_rate
from tuner.counter_random import step_key, uniform


@keras.saving.register_keras_serializable(package="babysitter")
class VariableDropout(keras.layers.Layer):
    """Dropout whose rate is a variable, so changing it does not retrace the training step.

    Its mask is ``tuner.counter_random``'s, keyed by the trial's seed and the training step
    (both variables): the mask the same trial gets in a population (``tuner.population``).
    """

    def __init__(self, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.rate = self.add_weight(shape=(), initializer="zeros", trainable=False, name="rate")
        self.key = self.add_weight(
            shape=(), initializer=keras.initializers.Constant(seed), dtype="int32",
            trainable=False, name="key",
        )  # fmt: skip
        self.step = self.add_weight(
            shape=(), initializer="zeros", dtype="int32", trainable=False, name="step"
        )

    def call(self, inputs, training=False):
        if not training:
            return inputs
        rate = keras.ops.cast(self.rate, inputs.dtype)
        rows, cols = keras.ops.shape(inputs)
        noise = uniform(step_key(self.key, self.step), rows, cols)
        self.step.assign(self.step + 1)
        return keras.ops.where(noise >= rate, inputs / (1.0 - rate), 0.0)


@keras.saving.register_keras_serializable(package="babysitter")
class VariableL2Dense(keras.layers.Dense):
    """Dense with an L2 penalty whose strength is a variable: adds ``l2 · Σ kernel²`` as a loss."""

    def build(self, input_shape):
        super().build(input_shape)
        self.l2 = self.add_weight(shape=(), initializer="zeros", trainable=False, name="l2")

    def call(self, inputs, training=None):
        self.add_loss(self.l2 * keras.ops.sum(keras.ops.square(self.kernel)))
        return super().call(inputs)


@keras.saving.register_keras_serializable(package="babysitter")
class MaskedL2Dense(VariableL2Dense):
    """A hidden layer of ``MAX_UNITS`` whose width is a mask variable: one compiled graph
    serves every width, and masked units output zero (so they get no gradient either)."""

    def build(self, input_shape):
        super().build(input_shape)
        self.mask = self.add_weight(
            shape=(self.units,), initializer="ones", trainable=False, name="mask"
        )

    def call(self, inputs, training=None):
        return super().call(inputs) * keras.ops.cast(self.mask, self.compute_dtype)


MAX_UNITS = 512
"""The widest hidden layer a head trial can ask for (the search space's largest choice)."""


@dataclass
class HeadHyperparameters:
    """What one head trial trains with."""

    lr: float = 1e-3
    l2: float = 0.0
    dropout: float = 0.2
    optimizer: str = "adam"
    schedule: str = "constant"
    head_units: int = 0
    label_smoothing: float = 0.0

    @classmethod
    def from_values(cls, values: dict) -> HeadHyperparameters:
        names = cls.__dataclass_fields__
        kept = {k: v for k, v in values.items() if k in names}
        if "head_units" in kept:
            kept["head_units"] = int(kept["head_units"])
        return cls(**kept)


@dataclass
class HeadResult:
    """One trained head: per-epoch history, best validation accuracy, why it stopped."""

    history: list[dict] = field(default_factory=list)
    val_accuracy: float = 0.0
    val_loss: float = math.inf
    seconds: float = 0.0
    exploded: dict | None = None


class _HeadWatch(keras.callbacks.Callback):
    """Sets the scheduled rate each epoch, records the history, stops an exploding head.

    As in ``train`` (``training.babysit.explosion``), the 3× rule judges the data loss (the
    ``data_loss`` metric: cross-entropy without the L2 penalty) against a fresh head's, about
    ln(C) (small logits): a head whose very first epoch explodes is caught too, and a strong L2
    on a wide head, whose penalty falls as the weights shrink, is not mistaken for one. A trial
    stopped here would have been stopped by ``train`` too.
    """

    def __init__(
        self,
        hp: HeadHyperparameters,
        epochs: int,
        initial: float,
        result,
        validation: tuple[np.ndarray, np.ndarray],
    ):
        super().__init__()
        self.hp, self.epochs, self.limit, self.result = (
            hp,
            epochs,
            EXPLOSION_FACTOR * initial,
            result,
        )
        self.val_x, self.val_y = validation

    def on_epoch_begin(self, epoch, logs=None):
        self.rate = schedule_rate(self.hp.schedule, self.hp.lr, epoch, self.epochs)
        self.model.optimizer.learning_rate.assign(self.rate)

    def on_epoch_end(self, epoch, logs=None):
        logs = {k: float(v) for k, v in (logs or {}).items()}
        if len(self.val_x):
            logs.update(validate(self.model, self.val_x, self.val_y))
        self.result.history.append({"epoch": epoch + 1, **logs, "lr": self.rate})
        loss = logs.get("data_loss", logs.get("loss", math.nan))
        if not math.isfinite(loss) or loss > self.limit:
            self.result.exploded = {"epoch": epoch + 1, "loss": loss, "learning_rate": self.rate}
            self.model.stop_training = True


def validate(model: keras.Model, x: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """``val_loss`` (cross-entropy plus the L2 penalty, as Keras reports it) and
    ``val_accuracy`` from one compiled prediction call.

    ``fit(validation_data=…)`` runs a whole ``evaluate`` per epoch (data adapter, iterator,
    metric resets): 0.35 s an epoch under TensorFlow on 2 cores and 0.07 s under JAX, five
    times the training epoch itself. One ``predict_on_batch`` of the cached features and a few
    NumPy operations give the same numbers.
    """
    penalty = sum(
        float(np.asarray(layer.l2)) * float(np.sum(np.square(np.asarray(layer.kernel))))
        for layer in model.layers
        if isinstance(layer, VariableL2Dense)
    )
    return validation_metrics(model.predict_on_batch(x), labels, penalty)


def validation_metrics(logits, labels: np.ndarray, penalty: float) -> dict[str, float]:
    """``val_loss`` (cross-entropy + ``penalty``), ``val_accuracy`` and ``val_data_loss`` of
    one head's validation logits, in float64 (shared by a head alone and a population)."""
    logits = np.asarray(logits, dtype=np.float64)
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    data_loss = float(-log_probs[np.arange(len(labels)), labels].mean())
    accuracy = float(np.mean(logits.argmax(axis=1) == labels))
    penalty = float(penalty)
    return {"val_loss": data_loss + penalty, "val_accuracy": accuracy, "val_data_loss": data_loss}


def epoch_order(seed: int, epoch: int, rows: int) -> np.ndarray:
    """The order of the training rows in ``epoch``: one per (search seed, epoch), the same for
    every trial, so the heads of a population can share each feature batch."""
    return np.random.default_rng([seed, epoch]).permutation(rows)


def trial_seed(seed: int, stage: int, trial_id: str) -> int:
    """A trial's seed (initial weights, dropout masks), from its identity: the same whether it
    runs alone, in a population, or again after a kill."""
    return (seed + 1_000_003 * stage + zlib.crc32(str(trial_id).encode())) % 2**31


def initial_kernels(units: int, seed: int, fan_in: int, classes: int):
    """A fresh head's kernels over its live units: the hidden one Glorot-uniform
    ``(fan_in, units)`` (None without a hidden layer), the logits one N(0, 0.01²) for small
    logits (initial loss ≈ ln C, as in ``train``), ``(units or fan_in, classes)``."""
    rng = np.random.default_rng(seed)
    hidden = None
    if units:
        limit = math.sqrt(6 / (fan_in + units))
        hidden = rng.uniform(-limit, limit, (fan_in, units)).astype("float32")
    logits = rng.normal(0, 0.01, (units or fan_in, classes)).astype("float32")
    return hidden, logits


class HeadTrainer:
    """Trains heads on cached features; compiled models are cached by (hidden?, optimizer)."""

    def __init__(
        self,
        train_x: np.ndarray,
        train_y: np.ndarray,
        val_x: np.ndarray,
        val_y: np.ndarray,
        num_classes: int,
        batch_size: int = 32,
        seed: int = 0,
        class_weights: np.ndarray | None = None,
    ):
        """``class_weights``: one loss weight per class, fixed for every trial of the search
        (``training.fit.class_weights``), or None for an unweighted loss."""
        self.train_x, self.train_y = train_x.astype("float32"), train_y.astype("int64")
        self.sample_weights = (
            None if class_weights is None else np.asarray(class_weights, "float32")[self.train_y]
        )
        self.val_x, self.val_y = val_x.astype("float32"), val_y.astype("int64")
        self.num_classes = num_classes
        self.batch_size = batch_size
        self.seed = seed
        self._models: dict[tuple[int, str], keras.Model] = {}
        self._trials = 0

    @property
    def compiled_models(self) -> int:
        return len(self._models)

    def _model(self, units: int, optimizer: str) -> keras.Model:
        """One compiled model per (with or without a hidden layer, optimizer): at most six."""
        if units > MAX_UNITS:
            raise ValueError(f"Expected head_units <= {MAX_UNITS}. Received: {units}.")
        key = (units > 0, optimizer)
        if key not in self._models:
            features = keras.Input((self.train_x.shape[1],), name="features")
            x = VariableDropout(seed=self.seed, name="dropout")(features)
            if units:
                x = MaskedL2Dense(MAX_UNITS, activation="relu", name="hidden")(x)
            # Logits out, loss from logits: an exploding trial shows as a loss that keeps
            # growing (CS231n's picture) instead of saturating at the clipped -ln(1e-7).
            logits = VariableL2Dense(self.num_classes, name="logits", dtype="float32")(x)
            model = keras.Model(features, logits, name=f"head_{key[0]}_{optimizer}")
            steps = max(1, math.ceil(len(self.train_x) / self.batch_size))
            model.compile(
                optimizer=make_optimizer(optimizer, 1e-3),  # the schedule sets the rate
                loss=keras.losses.CategoricalCrossentropy(from_logits=True),
                metrics=[
                    "accuracy",
                    keras.metrics.CategoricalCrossentropy(from_logits=True, name="data_loss"),
                ],
                steps_per_execution=steps,
            )
            self._warm_up(model)
            self._models[key] = model
        return self._models[key]

    def _warm_up(self, model: keras.Model) -> None:
        """One fit at learning rate 0 before the first trial: on JAX a model's first ``fit``
        (optimizer built, functions traced) trains slightly differently from later ones, and a
        trial's result must not depend on whether its model was new."""
        targets = self._targets(self.train_y, 0.0)
        model.optimizer.learning_rate.assign(0.0)
        model.fit(
            self.train_x,
            targets,
            sample_weight=self.sample_weights,
            batch_size=self.batch_size,
            epochs=1,
            verbose=0,
        )
        if len(self.val_x):
            model.predict_on_batch(self.val_x)  # traces (compiles) the prediction once

    def _reset(self, model: keras.Model, hp: HeadHyperparameters, seed: int) -> None:
        """Fresh weights (the initializers of a new head), zeroed optimizer, this trial's knobs.

        Units past ``head_units`` get zero weights and a zero mask: they add nothing to the
        output or the penalty, exactly as if the layer were ``head_units`` wide.
        """
        units = hp.head_units
        fan_in = model.input_shape[-1]
        hidden, top = initial_kernels(units, seed, fan_in, self.num_classes)
        for layer in model.layers:
            if isinstance(layer, VariableDropout):
                layer.rate.assign(hp.dropout)
                layer.key.assign(seed)
                layer.step.assign(0)
            if not isinstance(layer, VariableL2Dense):
                continue
            kernel = np.zeros(layer.kernel.shape, "float32")
            if isinstance(layer, MaskedL2Dense):
                kernel[:, :units] = hidden
                layer.mask.assign((np.arange(kernel.shape[1]) < units).astype("float32"))
            else:
                kernel[: len(top)] = top
            layer.kernel.assign(kernel)
            layer.bias.assign(np.zeros(kernel.shape[1], "float32"))
            layer.l2.assign(hp.l2)
        for variable in model.optimizer.variables:
            variable.assign(np.zeros(variable.shape, variable.dtype))

    def _targets(self, labels: np.ndarray, smoothing: float) -> np.ndarray:
        onehot = np.eye(self.num_classes, dtype="float32")[labels]
        return onehot * (1 - smoothing) + smoothing / self.num_classes

    def train(self, hp: HeadHyperparameters, epochs: int, seed: int | None = None) -> HeadResult:
        """Train a fresh head for ``epochs``; stops early if the loss passes 3× its start."""
        started = time.perf_counter()
        self._trials += 1
        seed = self.seed + self._trials if seed is None else seed
        model = self._model(hp.head_units, hp.optimizer)
        self._reset(model, hp, seed)
        targets = self._targets(self.train_y, hp.label_smoothing)
        result = HeadResult()
        watch = _HeadWatch(hp, epochs, math.log(self.num_classes), result, (self.val_x, self.val_y))
        for epoch in range(epochs):  # one fit per epoch: the epoch's order is the search's
            order = epoch_order(self.seed, epoch, len(self.train_x))
            model.fit(
                self.train_x[order],
                targets[order],
                sample_weight=None if self.sample_weights is None else self.sample_weights[order],
                batch_size=self.batch_size,
                initial_epoch=epoch,
                epochs=epoch + 1,
                callbacks=[watch],
                verbose=0,
                shuffle=False,
            )
            if result.exploded:
                break
        finite = [h for h in result.history if math.isfinite(h.get("val_accuracy", math.nan))]
        if finite:
            best = max(finite, key=lambda h: h["val_accuracy"])
            result.val_accuracy, result.val_loss = best["val_accuracy"], best["val_loss"]
        result.seconds = time.perf_counter() - started
        return result
