"""``python -m training check``: the sanity gate a user runs before spending hours.

In CS231n's order: the initial loss is ln(C); L2 raises it; a tiny subset can be memorised; and
the learning-rate range test finds the window worth searching. Then ``label_noise`` asks whether
the training labels agree with what the features say. All run on the head over backbone features
computed once (the phase-1 path), so the gate takes seconds after the one backbone pass, and a
broken preprocessing or label pipeline shows up as it would in training. The audit's findings
(leakage, balance, size) come first. Stored as a run of kind ``check``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import keras

from training.babysit.audit_findings import audit_findings
from training.babysit.checks import (
    initial_loss_check,
    overfit_check,
    regularization_check,
    tiny_subset,
)
from training.babysit.diagnosis import reconcile
from training.babysit.findings import Finding, as_dicts, worst_status
from training.babysit.label_noise import label_noise_check
from training.config import TrainConfig
from training.fit.device import use_compilation_cache
from training.fit.features import frozen_extractor
from training.fit.lr_auto import gate_features, resolve_auto, sweep_finding
from training.fit.prepare import prepare_for_config, resolve_model_config
from training.model.classifier import build_head
from training.store import RunStore


@dataclass
class GateResult:
    run_id: str
    findings: list[dict]
    status: str
    seconds: float
    diagnosis: dict | None = None


def run_gate(
    config: TrainConfig,
    store: RunStore | None = None,
    *,
    verbose: int = 1,
    echo: Callable[[str], None] = print,
) -> GateResult:
    """Prepare the data as ``train`` would, run the four checks, store them as a ``check`` run."""
    started = time.monotonic()
    resolve_model_config(config)
    store = store or RunStore()
    use_compilation_cache(store.compilation_cache_dir())
    spec, image_size, data = prepare_for_config(config, store, progress=verbose > 0)
    run = store.create_run(
        "check", spec.name, config.to_dict(), config.fingerprint(data.cache.key), str(data.root)
    )
    findings: list[Finding] = audit_findings(data.audit, config.class_weights)
    with store.tracking(run.id):
        try:
            findings += _model_checks(config, spec, image_size, data, store, echo)
            findings, diagnosis = reconcile(findings, config.to_dict())
        finally:  # what was checked before an error is kept with the run
            store.add_findings(run.id, findings)
    status = worst_status(findings)
    seconds = round(time.monotonic() - started, 1)
    summary = {
        "gate": status,
        "seconds": seconds,
        "classes": data.class_names,
        "diagnosis": diagnosis,
    }
    store.set_status(run.id, "completed", summary=summary)
    return GateResult(run.id, as_dicts(findings), status, seconds, diagnosis)


def _model_checks(config, spec, image_size, data, store, echo) -> list[Finding]:
    extractor = frozen_extractor(spec, data, image_size, config)
    features, sample = gate_features(config, spec, data, store.cache_dir(), extractor, echo)
    rows, val_rows = sample["train"], sample["val"]
    x, val_x = features["train"], features["val"]
    keras.utils.set_random_seed(config.seed)  # the heads start alike, cache hit or not
    y = data.cache.labels[rows]
    num_classes = len(data.class_names)

    def make_head(l2: float) -> keras.Model:
        return build_head(
            x.shape[1],
            num_classes,
            dropout=0.0,
            l2=l2,
            head_units=config.head_units,
            seed=config.seed,
        )

    found: dict[str, Finding] = {}
    steps: list[tuple[str, Callable[[], Finding]]] = [
        ("initial loss", lambda: initial_loss_check(make_head(config.l2), x, y, num_classes)),
        ("regularization", lambda: regularization_check(make_head, x, y, num_classes)),
        ("overfitting a tiny subset", lambda: _overfit(make_head, x, y, num_classes, config)),
        ("learning-rate range", lambda: _lr_range(x, y, num_classes, config, found, echo)),
        (
            "the labels",
            lambda: label_noise_check(
                x,
                y,
                val_x,
                data.cache.labels[val_rows],
                data.class_names,
                train_files=[data.cache.rels[i] for i in rows],
                seed=config.seed,
                settings=config.to_dict(),
            ),
        ),
    ]
    for label, step in steps:
        echo(f"Checking {label}…")
        began = time.monotonic()
        finding = step()
        finding.evidence["seconds"] = round(time.monotonic() - began, 2)
        found[finding.check] = finding
    return list(found.values())


def _overfit(make_head, x, y, num_classes, config) -> Finding:
    subset = tiny_subset(y, seed=config.seed)
    return overfit_check(make_head(0.0), x[subset], y[subset], num_classes)


def _lr_range(x, y, num_classes, config, found: dict[str, Finding], echo) -> Finding:
    """The range test judging the run's head rate; an ``auto`` rate is picked as ``train``
    would pick it (the finding's evidence says which)."""
    overfit = found.get("overfit_tiny_subset")
    learns = None if overfit is None else overfit.status != "fail"
    finding = sweep_finding(x, y, num_classes, config, learns=learns)
    if config.auto_rates:
        resolve_auto(config, finding, echo)
    return finding
