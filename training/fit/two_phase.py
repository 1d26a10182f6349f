"""Two-phase fine-tuning, stored as a run, resumable after a kill.

Phase 1 trains only the head, on features the frozen backbone computes once (a head epoch then
costs milliseconds instead of a backbone pass). Phase 2 unfreezes the top blocks and trains the
whole model on images, augmentation inside the model, with a lower learning rate; BatchNorm keeps
its pretrained statistics (the keras-io fine-tuning rule). With random initial weights BatchNorm
trains, and its statistics are re-estimated after each phase (see ``training.fit.batchnorm``).

Resuming: a run is identified by its config and dataset content. Re-running the same command
after a kill finds the unfinished run, reloads the weights saved at the end of phase 1, and
``BackupAndRestore`` continues phase 2 from its last finished epoch. Every file a later run reads
(phase 1's weights, checkpoints, history, predictions, the model) is renamed into place only when
whole; a write that fails (a full disk) leaves the run interrupted, so the same command resumes it.

This module holds the two-phase fit of one run, from its creation to its saved model.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import keras
import numpy as np

from training import contention
from training.atomic import atomic_path, write_h5, write_text
from training.babysit.audit_findings import audit_findings
from training.babysit.diagnose import diagnose_fit
from training.babysit.diagnosis import reconcile
from training.babysit.explosion import LossExplosionStop
from training.babysit.findings import Finding, as_dicts
from training.babysit.label_noise import label_noise_check
from training.config import TrainConfig
from training.data.batches import ImageBatches, batch_multiple
from training.errors import TrainingDiverged
from training.fit.batchnorm import speed_up_moving_averages
from training.fit.calibrate import calibrate_classifier
from training.fit.callbacks import RunLogger, ThrottledBackupAndRestore
from training.fit.class_weights import per_class_record, weighting_for, weighting_line
from training.fit.device import accelerator, apply_precision, resolve_jit, use_compilation_cache
from training.fit.features import backbone_features, frozen_extractor, recalibrate
from training.fit.lr_auto import (
    auto_findings,
    auto_records,
    gate_features,
    resolve_auto,
    sweep_finding,
    underfit_rate,
)
from training.fit.optimizers import make_optimizer
from training.fit.parallel import data_parallel
from training.fit.prepare import PreparedData, prepare_for_config, resolve_model_config
from training.fit.schedules import schedule_rate
from training.model.backbones import BackboneSpec
from training.model.blocks import set_trainable_top_blocks
from training.model.classifier import Classifier, build_classifier
from training.model.losses import classification_loss
from training.store import RunStore


@dataclass
class TrainResult:
    run_id: str
    summary: dict
    findings: list[dict] = field(default_factory=list)


def evaluate_split(model: keras.Model, data: PreparedData, split: str, batch_size: int) -> dict:
    """Loss and accuracy in inference mode (no augmentation, BatchNorm moving statistics)."""
    rows = data.rows(split)
    if len(rows) == 0:
        return {}
    batches = ImageBatches(data.cache.images, data.cache.labels, rows, batch_size)
    # From the predictions of exactly these rows: ``evaluate`` would count padding rows of a
    # data-parallel batch in its loss average.
    probabilities = batches.trim(model.predict(batches, verbose=0)).astype(np.float32)
    labels = data.cache.labels[rows]
    loss = model.loss(labels, probabilities)
    accuracy = np.mean(np.argmax(probabilities, axis=-1) == labels)
    return {"loss": float(loss), "accuracy": float(accuracy), "images": len(rows)}


def train(
    config: TrainConfig,
    store: RunStore | None = None,
    *,
    verbose: int = 1,
    echo: Callable[[str], None] = print,
    on_run: Callable[[str], None] | None = None,
) -> TrainResult:
    """Audit, split, decode, fine-tune in two phases, evaluate, save; one stored run.

    ``on_run`` is told the run's id as soon as it is created or resumed: a search records which
    run each of its fine-tunes is, so the app follows it without guessing.
    """
    spec, _ = resolve_model_config(config)
    config.check_unfreeze(len(spec.blocks))  # before the store is opened: a refusal records nothing
    store = store or RunStore()
    use_compilation_cache(store.compilation_cache_dir())
    spec, image_size, data = prepare_for_config(config, store, progress=verbose > 0)
    auto = _auto_rates(config, spec, image_size, data, store, echo)
    with data_parallel(config.devices, config.batch_size) as devices:
        if devices > 1:
            echo(f"Data-parallel training: each batch is split over {devices} devices.")
        return _train_stored(config, spec, image_size, data, store, verbose, echo, on_run, auto)


def _auto_rates(config, spec, image_size, data, store, echo) -> Finding | None:
    """``--lr auto``/``--finetune-lr auto`` picked by ``check``'s range test before the run
    exists, so its config (and the fingerprint a rerun resumes by) holds the rates trained with;
    the sweep's finding, or None when no rate is ``auto``."""
    if not config.auto_rates:
        return None
    extractor = frozen_extractor(spec, data, image_size, config)
    features, rows = gate_features(
        config, spec, data, store.cache_dir(), extractor, echo, ("train",)
    )
    labels = data.cache.labels[rows["train"]]
    finding = sweep_finding(features["train"], labels, len(data.class_names), config)
    resolve_auto(config, finding, echo)
    keras.utils.clear_session()  # the run's layers are named as if nothing was built before
    return finding


def _train_stored(
    config, spec, image_size, data, store, verbose, echo, on_run, auto=None
) -> TrainResult:
    """One stored run: created or resumed, marked failed or interrupted when it ends early."""
    fingerprint = config.fingerprint(data.cache.key)
    run = store.find_resumable("train", fingerprint)
    if run is not None:
        store.claim(run.id)
        echo(f"Resuming run {run.id} (same arguments and data as an unfinished run).")
    else:
        run = store.create_run("train", spec.name, config.to_dict(), fingerprint, str(data.root))
    if on_run is not None:
        on_run(run.id)
    store.append_event(run.id, {"event": "started", "splits": data.split_counts()})
    with store.tracking(run.id):
        summary, findings = _train_run(
            config, spec, image_size, data, store, run.id, verbose, echo, auto
        )
    return TrainResult(run.id, summary, findings)


def _train_run(
    config: TrainConfig,
    spec: BackboneSpec,
    image_size: int,
    data: PreparedData,
    store: RunStore,
    run_id: str,
    verbose: int,
    echo: Callable[[str], None],
    auto: Finding | None = None,
) -> tuple[dict, list[dict]]:
    started = contention.snapshot()  # wall time, and the machine's other work from here
    keras.utils.set_random_seed(config.seed)
    policy = apply_precision(config.precision)
    jit = resolve_jit(config.jit)
    clf = build_classifier(
        spec,
        data.class_names,
        image_size,
        config.weights,
        dropout=config.dropout,
        l2=config.l2,
        head_units=config.head_units,
        augment=config.augment,
        seed=config.seed,
    )
    weighting = weighting_for(config.class_weights, data)
    weights = weighting.weights
    if weighting.applied:
        echo(weighting_line(weighting.record(data.class_names)))
    trainable: dict[str, int] = {}
    watch = LossExplosionStop(len(data.class_names), settings=config.to_dict())

    phase1_path = store.artifact(run_id, "phase1")
    phase1_done = _reload_phase1(clf, phase1_path, echo)
    if not phase1_done and not config.pretrained:
        recalibrate(clf, data, config)
    # Computed once, before phase 1: phase 1 trains on them and ``label_noise`` reads them
    # (before any fine-tuning has fitted the labels).
    features = backbone_features(
        spec, data, ("train", "val"), config, store.cache_dir(), lambda: clf, echo
    )
    noise = _label_noise(features, data, config)
    if not phase1_done:
        if config.epochs_head > 0:
            trainable["head"] = _trainable(clf.head)
            _phase_head(
                config, clf, data, features, store, run_id, weights, jit, watch, verbose, echo
            )
        if not watch.exploded:
            write_h5(phase1_path, lambda temp: clf.model.save_weights(str(temp)))

    if config.epochs_finetune > 0 and not watch.exploded:
        watch.phase = "finetune"
        _phase_finetune(config, clf, data, store, run_id, weights, jit, watch, verbose, echo)
        trainable["finetune"] = _trainable(clf.model)
        if not config.pretrained and not watch.exploded:
            recalibrate(clf, data, config)

    def sweep() -> Finding:  # the head's rate judged on its own features, when it underfits
        return sweep_finding(features["train"], data.labels("train"), len(data.class_names), config)

    judged = config.epochs_head > 0 and auto is None  # an auto rate sits inside the window
    outcome = Outcome(trainable, noise, auto, sweep if judged else None)
    return _finish(config, clf, data, store, run_id, outcome, watch, policy, started)


def _reload_phase1(clf: Classifier, path, echo) -> bool:
    """Whether phase 1's saved weights were reloaded; a file that does not load is deleted,
    with a warning, and phase 1 trained again instead of the run failing on it."""
    if not path.exists():
        return False
    try:
        clf.model.load_weights(path)
    except (OSError, ValueError) as error:  # h5py: truncated or not HDF5; Keras: wrong layers
        path.unlink(missing_ok=True)
        echo(f"warning: {path} could not be read ({error}); phase 1 is trained again.")
        return False
    echo("Phase 1 already finished in this run: weights reloaded.")
    return True


@dataclass
class Outcome:
    """What the fit produced for the diagnoses besides the stored epochs: what could learn,
    the label check, the ``--lr auto`` sweep and the head's sweep to run if the fit underfits."""

    trainable: dict[str, int]
    label_noise: Finding
    auto: Finding | None = None
    sweep: Callable[[], Finding] | None = None


def _trainable(model: keras.Model) -> int:
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


def _label_noise(features, data, config) -> Finding:
    rows = data.rows("train")
    return label_noise_check(
        features["train"],
        data.labels("train"),
        features["val"],
        data.labels("val"),
        data.class_names,
        train_files=[data.cache.rels[i] for i in rows],
        seed=config.seed,
        settings=config.to_dict(),
    )


def _compile(model: keras.Model, config: TrainConfig, learning_rate: float, jit) -> None:
    """Data-parallel batches carry zero-weight padding rows: there the loss and the accuracy
    are weighted (Keras applies sample weights to ``weighted_metrics`` only)."""
    padded = batch_multiple() > 1
    # The cross-entropy alone, beside Keras' loss (which adds the L2 penalty): the babysitter
    # judges this one (see training.babysit.explosion).
    metrics = ["accuracy", keras.metrics.SparseCategoricalCrossentropy(name="data_loss")]
    model.compile(
        optimizer=make_optimizer(config.optimizer, learning_rate),
        loss=classification_loss(
            config.label_smoothing,
            "mean_with_sample_weight" if padded else "sum_over_batch_size",
        ),
        metrics=None if padded else metrics,
        weighted_metrics=metrics if padded else None,
        jit_compile=jit,
    )


def _scheduler(config: TrainConfig, lr: float, epochs: int) -> keras.callbacks.Callback:
    """The config's schedule over one phase (constant keeps the compiled rate)."""
    return keras.callbacks.LearningRateScheduler(
        lambda epoch: schedule_rate(config.schedule, lr, epoch, epochs)
    )


def _phase_head(
    config, clf, data, features, store, run_id, weights, jit, watch, verbose, echo
) -> None:
    train_x, val_x = features["train"], features["val"]
    echo(f"Phase 1: training the head for {config.epochs_head} epochs (backbone frozen).")
    _compile(clf.head, config, config.lr, jit)
    logger = RunLogger(store, run_id, "head")
    train_batches = ImageBatches(
        train_x,
        data.labels("train"),
        batch_size=config.batch_size,
        shuffle=True,
        seed=config.seed,
        sample_weights=weights,
    )
    val_batches = ImageBatches(val_x, data.labels("val"), batch_size=config.batch_size)
    clf.head.fit(
        train_batches,
        validation_data=val_batches if len(val_x) else None,
        epochs=config.epochs_head,
        callbacks=[_scheduler(config, config.lr, config.epochs_head), logger, watch],
        verbose=_keras_verbose(verbose, per_epoch=True),
    )


def _phase_finetune(config, clf, data, store, run_id, weights, jit, watch, verbose, echo) -> None:
    unfreeze = config.resolved_unfreeze()
    if not config.pretrained:
        speed_up_moving_averages(clf.backbone)
    trainable = set_trainable_top_blocks(
        clf.backbone, clf.spec, unfreeze, train_batchnorm=not config.pretrained
    )
    which = "all blocks" if unfreeze == "all" else f"the top {unfreeze} block(s)"
    echo(
        f"Phase 2: fine-tuning {which}"
        f" ({trainable:,} trainable "
        f"parameters in the backbone) for {config.epochs_finetune} epochs at lr "
        f"{config.finetune_lr:g}."
    )
    _compile(clf.model, config, config.finetune_lr, jit)
    images, labels = data.cache.images, data.cache.labels
    # On an accelerator, two threads prepare the next batches while the device computes.
    train_batches = ImageBatches(
        images,
        labels,
        data.rows("train"),
        config.batch_size,
        shuffle=True,
        seed=config.seed,
        sample_weights=weights,
        workers=2 if accelerator() else 1,
    )
    val_rows = data.rows("val")
    val_batches = (
        ImageBatches(images, labels, val_rows, config.batch_size) if len(val_rows) else None
    )
    logger = RunLogger(store, run_id, "finetune")
    backup = ThrottledBackupAndRestore(str(store.artifact(run_id, "backup_phase2")), echo=echo)
    clf.model.fit(
        train_batches,
        validation_data=val_batches,
        epochs=config.epochs_finetune,
        # The logger before the checkpoint: a kill between the two redoes an epoch already
        # stored, where the other order resumed past an epoch the store never got.
        callbacks=[
            _scheduler(config, config.finetune_lr, config.epochs_finetune),
            logger,
            backup,
            watch,
        ],
        verbose=_keras_verbose(verbose, per_epoch=False),
    )


def _best_val_accuracy(histories: dict[str, list[dict]]) -> float | None:
    """The best epoch's validation accuracy over both phases (None without validation)."""
    scores = [e.get("val_accuracy", math.nan) for h in histories.values() for e in h]
    finite = [s for s in scores if isinstance(s, int | float) and math.isfinite(s)]
    return max(finite, default=None)


def _stored_histories(store: RunStore, run_id: str) -> dict[str, list[dict]]:
    """Every phase's epochs as the store holds them: after a resume, this process saw only the
    epochs it ran, while the history file and the diagnoses must cover the whole run."""
    histories: dict[str, list[dict]] = {}
    for row in store.epochs(run_id):
        metrics = {k: v for k, v in row.items() if k not in ("phase", "epoch")}
        histories.setdefault(row["phase"], []).append({"epoch": row["epoch"], **metrics})
    return histories


def _finish(config, clf, data, store, run_id, outcome, watch, policy, started):
    """Evaluate, diagnose, save; or store an exploded run as failed with its findings."""
    histories = _stored_histories(store, run_id)
    summary: dict = {
        "backbone": clf.spec.name,
        "image_size": clf.image_size,
        "weights": config.weights,
        "precision": policy,
        "classes": data.class_names,
        "splits": data.split_counts(),
        "epochs": {phase: len(h) for phase, h in histories.items()},
        "best_val_accuracy": _best_val_accuracy(histories),
        "devices": batch_multiple(),
        "class_weights": weighting_for(config.class_weights, data).record(data.class_names),
        **auto_records(outcome.auto),
    }
    findings = [
        *audit_findings(data.audit, config.class_weights),
        outcome.label_noise,
        *auto_findings(outcome.auto),
        watch.finding(),
    ]
    write_text(store.artifact(run_id, "history"), json.dumps(histories, indent=1))
    if watch.exploded:
        findings, summary["diagnosis"] = reconcile(findings, config.to_dict())
        found = as_dicts(findings)
        store.add_findings(run_id, found)
        explosion = found[-1]
        error = f"Training stopped: {explosion['measured']}. {explosion['advice']}"
        store.set_status(run_id, "failed", summary=summary, error=error)
        raise TrainingDiverged(error, run_id, found)
    if not clf.model.compiled:  # phase 2 skipped: compile once for evaluation
        _compile(clf.model, config, config.finetune_lr, resolve_jit(config.jit))
    for split in ("train", "val", "test"):
        scores = evaluate_split(clf.model, data, split, config.batch_size)
        if scores:
            summary[split] = scores
    if "train" in summary and "val" in summary:
        summary["gap"] = summary["train"]["accuracy"] - summary["val"]["accuracy"]
    fit = diagnose_fit(
        histories,
        summary,
        len(data.class_names),
        config.to_dict(),
        causes=[outcome.label_noise],
        trainable=outcome.trainable,
    )
    findings += fit + underfit_rate(fit, outcome.sweep)
    findings, summary["diagnosis"] = reconcile(findings, config.to_dict())
    found = as_dicts(findings)
    store.add_findings(run_id, found)
    # After the scores (the network as trained), before what is saved (calibrated).
    summary.update(calibrate_classifier(clf, data, config.calibrate, config.batch_size))
    _save_predictions(clf, data, store, run_id, config.batch_size)
    split = "val" if len(data.rows("val")) else "train"  # the rows _save_predictions kept
    summary.update(per_class_record(store.artifact(run_id, "predictions"), split))
    model_path = store.artifact(run_id, "model")
    write_h5(model_path, clf.model.save)
    summary["model"] = str(model_path)
    summary["seconds"] = round(time.monotonic() - started.wall, 1)
    summary["machine"] = contention.others_since(started)
    store.set_status(run_id, "completed", summary=summary)
    store.append_event(run_id, {"event": "completed", "summary": summary})
    return summary, found


def _save_predictions(clf, data, store, run_id, batch_size) -> None:
    """Validation probabilities from the trained model (for the confusion matrix, worst mistakes
    and the check that the saved file predicts the same)."""
    rows = data.rows("val") if len(data.rows("val")) else data.rows("train")
    batches = ImageBatches(data.cache.images, data.cache.labels, rows, batch_size)
    probabilities = batches.trim(clf.model.predict(batches, verbose=0)).astype(np.float32)
    with atomic_path(store.artifact(run_id, "predictions")) as temp:
        np.savez(
            temp,
            rows=rows,
            rels=np.array([data.cache.rels[i] for i in rows]),
            labels=data.cache.labels[rows],
            probabilities=probabilities,
            class_names=np.array(data.class_names),
            cache_key=data.cache.key,
        )


def _keras_verbose(verbose: int, per_epoch: bool) -> int:
    """Keras' progress bar for image epochs; one line per epoch for millisecond head epochs."""
    if verbose <= 0:
        return 0
    return 2 if per_epoch else 1
