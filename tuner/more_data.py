"""Every search's learning curve: would more data help, on the features its head trials used.

After the head stages, the backbone of the best head trial has its features in memory already
(the trainers'), so the curve costs only its head fits (seconds). It is stored twice, for two
kinds of reader: the ``more_data`` finding (printed, reconciled and drawn with the others) and
``summary["learning_curve"]`` (the curve itself, for Results, Datasets and the model card). A
resumed search reads back the finding it stored instead of fitting again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from training.babysit.learning_curve import CHECK, learning_curve, more_data_finding
from training.store import RunStore
from training.store.trials import trials
from tuner.config import SearchConfig
from tuner.heads import HeadTrainer


def best_backbone(store: RunStore, run_id: str, backbones: list[str]) -> str:
    """The backbone of the best completed head trial (the first one when none completed)."""
    done = [t for t in trials(store, run_id) if t["status"] == "completed" and t["score"]]
    if not done:
        return backbones[0]
    best = max(done, key=lambda t: t["score"])
    return best["hyperparameters"].get("backbone") or backbones[0]


def search_learning_curve(
    config: SearchConfig,
    trainers: dict[str, HeadTrainer],
    store: RunStore,
    run_id: str,
    echo: Callable[[str], None],
) -> dict[str, Any] | None:
    """The curve of the search's best backbone, its finding stored with the run; None where
    this process has no features (a distributed chief: its workers hold them)."""
    for stored in store.findings(run_id):
        if stored.get("check") == CHECK and isinstance(stored.get("evidence"), dict):
            return stored["evidence"]
    if not trainers:
        return None
    backbone = best_backbone(store, run_id, [*trainers])
    trainer = trainers.get(backbone) or next(iter(trainers.values()))
    echo(f"Learning curve: the head on 10–100% of the training images ({backbone})…")
    curve = learning_curve(
        trainer.train_x, trainer.train_y, trainer.val_x, trainer.val_y, seed=config.seed
    )
    curve["backbone"] = backbone
    finding = more_data_finding(curve, config.train_config(backbone).to_dict())
    store.add_findings(run_id, [finding])
    echo(f"Learning curve: {finding.measured}")
    return curve
