"""The search's last step: the top K head configurations fine-tuned in full, the best one
becoming the search's model (or, with ``--top-k 0``, the best head configuration as the answer).

Each fine-tune is an ordinary ``train`` run (two phases, its own findings), linked from the
search's events as it starts, so the app follows it and a resumed search reuses a run that
finished before a kill instead of training it twice.
"""

from __future__ import annotations

import shutil

import numpy as np

from training.atomic import atomic_path
from training.babysit.calibration import SUMMARY_KEYS
from training.errors import BabysitterError, ConfigError, TrainingDiverged
from training.fit.two_phase import train
from training.store import RunStore
from training.store.trials import trials
from tuner.config import SearchConfig

SCORES = ("train", "val", "test", "gap", "per_class", "class_weights")
"""What the search's summary takes from its best fine-tune: scores, per-class scores and the
class weights it trained with (the same for every trial: ``training.fit.class_weights``)."""


def trial_train_overrides(values: dict) -> dict:
    """A trial's hyperparameters as ``TrainConfig`` fields (fine-tune rate = lr × factor)."""
    out = {
        key: values[key]
        for key in ("lr", "l2", "dropout", "optimizer", "schedule", "label_smoothing")
        if key in values
    }
    if "head_units" in values:
        out["head_units"] = int(values["head_units"])
    if "unfreeze" in values:
        out["unfreeze"] = int(values["unfreeze"])
    if "finetune_factor" in values and "lr" in values:
        out["finetune_lr"] = float(values["lr"]) * float(values["finetune_factor"])
    return out


def _completed_trials(store: RunStore, run_id: str) -> list[dict]:
    completed = [t for t in trials(store, run_id) if t["status"] == "completed"]
    if not completed:
        raise ConfigError(
            "Every trial failed (see `python -m training runs show "
            f"{run_id}`): the ranges are off. Run `python -m training check` for the lr range."
        )
    return completed


def _trial_counts(all_trials: list[dict]) -> dict:
    return {
        "completed": sum(t["status"] == "completed" for t in all_trials),
        "failed": sum(t["status"] != "completed" for t in all_trials),
        "head_seconds_mean": float(np.mean([t["seconds"] for t in all_trials]))
        if all_trials
        else 0.0,
    }


def head_only_summary(store: RunStore, run_id: str) -> dict:
    """``--top-k 0``: the best head trial is the answer; no model is trained or saved."""
    best = max(_completed_trials(store, run_id), key=lambda t: t["score"])
    return {
        "best_trial": best["trial_id"],
        "best_run": None,
        "hyperparameters": best["hyperparameters"],
        "head_val_accuracy": best["score"],
        "backbone": best["hyperparameters"].get("backbone")
        or store.get_run(run_id).config["backbones"][0],
        "finetuned": [],
        "trials": _trial_counts(trials(store, run_id)),
        "model": None,
    }


def _linked_result(store: RunStore, events: list[dict], trial: dict) -> dict | None:
    """The ``finetuned`` event of a fine-tune whose run completed but was never recorded as
    done (a kill between the two): its run is reused instead of training a second one."""
    links = [
        e
        for e in events
        if e.get("event") == "finetune_run" and e.get("trial_id") == trial["trial_id"]
    ]
    if not links:
        return None
    try:
        child = store.get_run(links[-1]["run"])
    except BabysitterError:
        return None
    if child.status != "completed" or not child.summary:
        return None
    return {
        "event": "finetuned",
        "trial_id": trial["trial_id"],
        "run_id": child.id,
        "val_accuracy": child.summary.get("val", {}).get("accuracy"),
        "train_accuracy": child.summary.get("train", {}).get("accuracy"),
    }


def finetune_top(config: SearchConfig, store: RunStore, run_id: str, echo):
    """Fine-tune the top K head configurations in full; the best becomes the search's model."""
    completed = _completed_trials(store, run_id)
    ranked = sorted(completed, key=lambda t: -t["score"])[: config.top_k]
    events = store.events(run_id)
    done = {e["trial_id"]: e for e in events if e.get("event") == "finetuned"}
    for rank, trial in enumerate(ranked, start=1):
        if trial["trial_id"] not in done and (finished := _linked_result(store, events, trial)):
            store.append_event(run_id, finished)  # killed after its run ended, before this
            done[trial["trial_id"]] = finished
        if trial["trial_id"] in done:
            continue
        values = trial["hyperparameters"]
        backbone = values.get("backbone") or config.backbones[0]
        train_config = config.train_config(backbone, **trial_train_overrides(values))
        echo(f"Fine-tuning #{rank} (trial {trial['trial_id']}, head val {trial['score']:.1%})…")
        # Monitor follows the fine-tune through these: started, then the run it trains in.
        started = {"event": "finetuning", "trial_id": trial["trial_id"], "rank": rank}
        store.append_event(run_id, {**started, "of": len(ranked)})

        def link(train_run_id: str, started=started) -> None:
            store.append_event(run_id, {**started, "event": "finetune_run", "run": train_run_id})

        event = {"event": "finetuned", "trial_id": trial["trial_id"]}
        try:
            result = train(train_config, store, verbose=0, echo=echo, on_run=link)
            event.update(
                run_id=result.run_id,
                val_accuracy=result.summary.get("val", {}).get("accuracy"),
                train_accuracy=result.summary.get("train", {}).get("accuracy"),
            )
        except TrainingDiverged as stopped:
            event.update(run_id=stopped.run_id, error=str(stopped))
        store.append_event(run_id, event)
        done[trial["trial_id"]] = event
    finished = [e for e in done.values() if e.get("val_accuracy") is not None]
    if not finished:
        raise ConfigError("Every fine-tune diverged; lower the fine-tune rate range (--space).")
    best = max(finished, key=lambda e: e["val_accuracy"])
    child = store.get_run(best["run_id"])
    for name in ("model", "predictions", "history"):
        source = store.artifact(child.id, name)
        if source.exists():
            with atomic_path(store.artifact(run_id, name)) as temp:
                shutil.copy(source, temp)
    best_trial = next(t for t in completed if t["trial_id"] == best["trial_id"])
    store.add_findings(run_id, store.findings(child.id))
    all_trials = trials(store, run_id)
    summary = {
        "best_trial": best["trial_id"],
        "best_run": child.id,
        "hyperparameters": best_trial["hyperparameters"],
        "head_val_accuracy": best_trial["score"],
        # The scores, and the calibration of the child's model (which becomes this one).
        **{k: child.summary[k] for k in (*SCORES, *SUMMARY_KEYS) if k in child.summary},
        "backbone": child.summary.get("backbone"),
        "classes": child.summary.get("classes"),
        "finetuned": list(done.values()),
        "trials": _trial_counts(all_trials),
        "model": str(store.artifact(run_id, "model")),
    }
    return summary
