"""The staged search: coarse-to-fine Keras Tuner over heads on cached features, then fine-tuning.

1. Prepare the data once (the same audit, split and cache as ``train``) and compute each
   backbone's features once (the phase-1 path of ``train``).
2. Stage by stage, a Keras Tuner oracle samples head hyperparameters; a trial trains a head on
   the cached features (``tuner.heads``: compiled once, milliseconds per epoch). Each stage after
   the first narrows the ranges around the best trials, or widens one whose best value sits at
   its edge (``tuner.stages``).
3. The top K configurations are fine-tuned in full (``tuner.finetune``: two-phase train runs
   with their own findings); the best becomes the search run's model. With ``--top-k 0`` the
   search stops at the best head configuration and trains no model.

Everything is in the run store as it happens; Keras Tuner's own files (one project per stage)
make a killed search resumable: finished trials are kept, the interrupted one is redone.

This module holds the staged head search (its chief/worker roles share every step;
the top-K fine-tune is in :mod:`tuner.finetune`).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import keras
import keras_tuner as kt

from training import contention
from training.babysit.diagnosis import reconcile
from training.babysit.findings import Finding, as_dicts
from training.errors import ConfigError
from training.fit.class_weights import weighting_for, weighting_line
from training.fit.device import use_compilation_cache
from training.fit.features import backbone_features, recalibrate
from training.fit.prepare import PreparedData, prepare_data
from training.model.backbones import get_backbone
from training.model.classifier import build_classifier
from training.store import RunStore
from training.store.trials import record_stage, stages, trials
from tuner.config import SearchConfig
from tuner.finetune import finetune_top, head_only_summary
from tuner.head_tuner import HeadTuner, TrialNotReported
from tuner.heads import HeadTrainer
from tuner.kt_internals import set_rpc_timeout
from tuner.more_data import search_learning_curve
from tuner.oracles import make_oracle
from tuner.overrides import parse_overrides
from tuner.resume import repair_trials
from tuner.space import SearchSpace, default_space
from tuner.stages import apply_actions, next_stage, plan_stages

TOP_PER_STAGE = 3
"""Trials of a stage that the next stage's ranges are fitted around."""


@dataclass
class SearchResult:
    run_id: str
    summary: dict
    findings: list[dict]


def search(
    config: SearchConfig,
    store: RunStore | None = None,
    *,
    resume: bool = False,
    role: str | None = None,
    verbose: int = 1,
    echo: Callable[[str], None] = print,
) -> SearchResult | None:
    """Run (or resume) a search; ``role`` is ``chief``/``worker`` for a distributed one.

    Returns None on a worker, whose trials the chief records.
    """
    store = store or RunStore()
    started = time.perf_counter()
    use_compilation_cache(store.compilation_cache_dir())
    data = _prepare(config, store, verbose)
    if len(data.rows("val")) == 0:
        raise ConfigError(
            "A search needs validation images to compare trials: give a val/ split or "
            "--val-split above 0."
        )
    trainers = {} if role == "chief" else _feature_trainers(config, data, store, echo)
    if role == "worker":
        run = _chief_run(config, data, store)
        _run_stages(config, trainers, store, run.id, echo, role)
        return None
    run = _open_run(config, data, store, resume, echo)
    with store.tracking(run.id, resume="run it again with --resume"):
        searching = time.perf_counter()
        machine = contention.snapshot()
        findings = _run_stages(config, trainers, store, run.id, echo, role)
        curve = search_learning_curve(config, trainers, store, run.id, echo)
        finetuning = time.perf_counter()
        if config.top_k > 0:  # its fine-tunes' findings go to the store, read back below
            summary = finetune_top(config, store, run.id, echo)
        else:
            summary = head_only_summary(store, run.id)
        summary["seconds"] = {
            "prepare_and_features": round(searching - started, 2),
            "head_search": round(finetuning - searching, 2),
            "finetune": round(time.perf_counter() - finetuning, 2),
        }
        summary["machine"] = contention.others_since(machine)
        if curve is not None:
            summary["learning_curve"] = curve
    reconciled, summary["diagnosis"] = reconcile(
        store.findings(run.id) or findings, config.to_dict()
    )
    store.set_status(run.id, "completed", summary=summary)
    store.append_event(run.id, {"event": "completed", "summary": summary})
    return SearchResult(run.id, summary, as_dicts(reconciled))


def _prepare(config: SearchConfig, store: RunStore, verbose: int) -> PreparedData:
    sizes = {config.image_size or get_backbone(b).default_size for b in config.backbones}
    if len(sizes) > 1:
        raise ConfigError(
            f"The backbones {config.backbones} default to different image sizes {sorted(sizes)}; "
            "give one with --image-size so every trial sees the same images."
        )
    size = sizes.pop()
    for name in config.backbones:
        get_backbone(name).check_size(size)
    return prepare_data(
        config.data,
        size,
        config.val_split,
        config.seed,
        store.datasets_dir(),
        store.cache_dir(),
        progress=verbose > 0,
    )


def _feature_trainers(
    config: SearchConfig, data: PreparedData, store: RunStore, echo
) -> dict[str, HeadTrainer]:
    """Each backbone's features of the train and val images, computed once (or read from the
    feature cache, without building the backbone), as head trainers. Every trial's loss gets
    the same class weights, which each fine-tune's ``train`` decides the same way."""
    weighting = weighting_for(config.class_weights, data)
    if weighting.applied:
        echo(weighting_line(weighting.record(data.class_names)))
    trainers = {}
    for name in config.backbones:
        train_config = config.train_config(name)

        def classifier(name=name, train_config=train_config):
            keras.utils.set_random_seed(config.seed)
            clf = build_classifier(
                get_backbone(name),
                data.class_names,
                data.cache.image_size,
                config.weights,
                augment=False,
            )
            if not train_config.pretrained:
                recalibrate(clf, data, train_config)
            return clf

        features = backbone_features(
            get_backbone(name),
            data,
            ("train", "val"),
            train_config,
            store.cache_dir(),
            classifier,
            echo,
        )
        trainers[name] = HeadTrainer(
            features["train"],
            data.labels("train"),
            features["val"],
            data.labels("val"),
            len(data.class_names),
            config.batch_size,
            config.seed,
            class_weights=weighting.weights,
        )
        keras.backend.clear_session()
    return trainers


def _open_run(config: SearchConfig, data: PreparedData, store: RunStore, resume: bool, echo):
    fingerprint = config.fingerprint(data.cache.key)
    if resume:
        previous = [
            r
            for r in store.list_runs(kind="search")
            if r.dataset == str(data.root) and r.status != "completed"
        ]
        same = [r for r in previous if r.fingerprint == fingerprint]
        if same:
            run = store.claim(same[0].id)
            echo(f"Resuming search {run.id}.")
            return run
        if previous:
            diffs = config.differences(previous[0].config)
            raise ConfigError(
                f"--resume found search {previous[0].id} on this dataset, but with different "
                f"arguments: {'; '.join(diffs)}. Run it with the same arguments, or drop "
                "--resume to start a new search."
            )
        echo("--resume: no unfinished search with these arguments; starting a new one.")
    return store.create_run(
        "search", "+".join(config.backbones), config.to_dict(), fingerprint, str(data.root)
    )


def _chief_run(config: SearchConfig, data: PreparedData, store: RunStore, wait_s: float = 300):
    """A worker's search run: the chief's running run with the same arguments and data."""
    fingerprint = config.fingerprint(data.cache.key)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        for run in store.list_runs(kind="search", status="running"):
            if run.fingerprint == fingerprint:
                return run
        time.sleep(1)
    raise ConfigError(
        "This worker found no running search with the same arguments and data in "
        f"{store.home} within {wait_s:.0f} s: start the chief (--distributed chief) with the same "
        "arguments and the same $BABYSITTER_HOME first."
    )


def _first_space(config: SearchConfig, store: RunStore | None, dataset: str | None):
    space = default_space(config.backbones, phase2=config.epochs_finetune > 0 and config.top_k > 0)
    if store is not None:
        actions = _gate_actions(store, dataset, config.backbones)
        if actions:
            space = apply_actions(space, actions)
    overrides = parse_overrides(config.space)
    for name, rng in overrides.items():
        space[name] = rng
    return space


def _gate_actions(store: RunStore, dataset: str | None, backbones: list[str]) -> list[dict]:
    """The lr range of the newest sanity gate run on this dataset and backbone, if any: its
    window (``evidence["suggested"]``), also where its action moves the gate run's own rate."""
    for run in store.list_runs(kind="check"):
        if run.dataset != dataset or run.config.get("backbone") not in backbones:
            continue
        for finding in store.findings(run.id):
            if finding["check"] == "lr_range" and finding.get("action"):
                low, high = (finding.get("evidence") or {}).get("suggested") or (None, None)
                if low is None:
                    return [finding["action"]]
                return [{"op": "narrow", "param": "lr", "low": low, "high": high}]
    return []


@contextlib.contextmanager
def restored_environ(*names: str) -> Iterator[None]:
    """Each of ``names`` in ``os.environ`` as it was before, however the block (or the function
    it decorates) ends: a failed stage does not leave its port to the rest of the process."""
    saved = {name: os.environ.get(name) for name in names}
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@restored_environ("KERASTUNER_ORACLE_PORT")
def _run_stages(config, trainers, store, run_id, echo, role) -> list[Finding]:
    """All stages, in order; a stage already finished (on resume) is reloaded, not rerun.

    In a distributed search, stage N's chief serves on the base port + N - 1 (Keras Tuner reads
    it from the environment)."""
    plan = plan_stages(config.trials, config.stages)
    dataset = store.get_run(run_id).dataset
    space: SearchSpace = _first_space(config, store, dataset)
    done = {s["stage"] for s in stages(store, run_id)}
    findings: list[Finding] = []
    directory = store.artifact(run_id, "tuner")
    recorder = None if role == "worker" else store  # the chief (or the only process) records
    base_port = os.environ.get("KERASTUNER_ORACLE_PORT")
    tuner_class, why_serial = _tuner_class(config, role)
    if why_serial:
        echo(why_serial)
    previous = None
    for stage, planned in enumerate(plan, start=1):
        if role == "worker" and not _chief_serves(store, run_id, stage):
            continue  # a late worker: the chief has moved past this stage
        if previous is not None:
            space, stage_findings = next_stage(space, previous, top_k=TOP_PER_STAGE, stage=stage)
            if stage not in done:
                store.add_findings(run_id, stage_findings)
            findings += stage_findings
        if role != "worker" and stage not in done:
            record_stage(store, run_id, stage, space.to_dict(), planned)
        if base_port and role:
            os.environ["KERASTUNER_ORACLE_PORT"] = str(int(base_port) + stage - 1)
        hp = kt.HyperParameters()
        space.register(hp)
        project = directory / f"stage_{stage}"
        if role != "worker" and project.exists():
            recorded = {
                t["trial_id"].split("-", 1)[1]: t["hyperparameters"]
                for t in trials(store, run_id, stage)
            }
            for trial_id in repair_trials(project, hp, recorded):
                echo(f"Trial s{stage}-{trial_id}: its file was unreadable; it will be redone.")
                store.append_event(
                    run_id, {"event": "trial_file_repaired", "trial_id": f"s{stage}-{trial_id}"}
                )
        oracle = make_oracle(
            config.tuner,
            hp,
            planned,
            config.epochs_head,
            config.seed + stage,
            recorder,
            run_id,
            stage,
        )
        # A worker keeps its own Keras Tuner files (the chief owns the project folder) and
        # writes each trial's details where the chief's oracle reads them.
        own = directory / "workers" / os.environ.get("KERASTUNER_TUNER_ID", "worker")
        tuner = tuner_class(
            oracle,
            trainers,
            config.epochs_head,
            details_dir=project,
            directory=str(own if role == "worker" else directory),
            project_name=f"stage_{stage}",
            overwrite=False,
        )
        echo(f"Stage {stage}/{len(plan)}: {planned} trials over {space.describe()}")
        if role == "worker":
            _search_as_worker(tuner, store, run_id, stage)
            continue
        tuner.search(verbose=0)
        previous = [
            {
                "hyperparameters": t.hyperparameters.values,
                "score": t.score if str(t.status) == "COMPLETED" else None,
            }
            for t in tuner.oracle.trials.values()
        ]
        if recorder is not None:
            finished = trials(store, run_id, stage)
            ok = [t for t in finished if t["status"] == "completed" and t["score"] is not None]
            echo(
                f"Stage {stage}: {len(ok)} trials completed, {len(finished) - len(ok)} failed; "
                f"best val accuracy {max((t['score'] for t in ok), default=0):.1%}."
            )
    return findings


def _tuner_class(config: SearchConfig, role: str | None) -> tuple[type, str | None]:
    """``BatchedHeadTuner`` for ``--trial-execution batched`` where it can batch, else
    ``HeadTuner``, with the reason it could not."""
    if config.trial_execution == "serial":
        return HeadTuner, None
    from tuner.batched_stage import BatchedHeadTuner, serial_reason  # imports TF/JAX programs

    reason = serial_reason(config.tuner, role)
    if reason is None:
        return BatchedHeadTuner, None
    return HeadTuner, f"Trials run one at a time (--trial-execution serial): {reason}."


WORKER_RPC_TIMEOUT_S = 20
"""A worker's wait on the chief per request. Keras Tuner waits an hour; a worker that asks a
stage the chief has just closed would sit that hour, so it asks again or moves on instead."""


def _chief_serves(store: RunStore, run_id: str, stage: int, wait_s: float = 600) -> bool:
    """Wait until the chief opens ``stage``; False once it has moved past it or finished."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        recorded = {s["stage"] for s in stages(store, run_id)}
        if stage + 1 in recorded or store.get_run(run_id).status != "running":
            return False
        if stage in recorded:
            return True
        time.sleep(0.5)
    return False


def _search_as_worker(tuner: HeadTuner, store: RunStore, run_id: str, stage: int) -> None:
    """Run the chief's trials for ``stage`` until it says stop or moves on without us."""
    import grpc

    set_rpc_timeout(WORKER_RPC_TIMEOUT_S)
    while True:
        try:
            tuner.search(verbose=0)
            return
        except (grpc.RpcError, TrialNotReported):
            if not _chief_serves(store, run_id, stage, wait_s=0.1):
                return
