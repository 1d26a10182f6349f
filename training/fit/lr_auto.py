"""The learning-rate window put to use: ``--lr auto`` trains inside it, a fixed rate is judged.

``check``'s range test (:mod:`training.babysit.lr_range`) runs on the head over the frozen
backbone's features of the gate's sample of training images, so it takes seconds once the
features are cached. ``train --lr auto`` runs it before the run exists and trains at its
suggestion (where the loss falls fastest, inside the window), so the run's config, and the
fingerprint a rerun of the same command resumes by, hold the number trained with;
``--finetune-lr auto`` takes a tenth of it (the defaults' ratio, 1e-3 to 1e-4). Where the sweep
finds no window (the loss flat, or exploding, at every rate) the defaults are kept and the line
printed says so. A run at a fixed rate that underfits runs the same sweep on its own features
afterwards: a rate below the window is then named as the cause, not the capacity.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from training.babysit.findings import Finding
from training.babysit.lr_range import analyse_sweep, sweep_learning_rates
from training.config import AUTO, TrainConfig
from training.fit.feature_cache import cached_features
from training.fit.lr_auto_lines import auto_line, auto_lines  # noqa: F401  (re-exported)
from training.fit.optimizers import make_optimizer
from training.model.classifier import build_head
from training.model.losses import classification_loss

GATE_MAX_IMAGES = 512
"""Training images the gate computes features for: enough for a stable mean loss and a 100-step
sweep of 32-image batches, few enough that the backbone pass takes seconds to a minute on CPU."""
FINETUNE_SHARE = 0.1
"""``--finetune-lr auto`` as a share of the head's auto rate: the defaults' ratio (1e-3, 1e-4);
phase 2 moves pretrained weights that a head's rate would wreck."""
DEFAULTS = {
    f.name: f.default for f in dataclasses.fields(TrainConfig) if f.name in ("lr", "finetune_lr")
}


def gate_sample(rows: np.ndarray, seed: int) -> np.ndarray:
    """At most ``GATE_MAX_IMAGES`` of ``rows``, drawn with the seed, in order."""
    if len(rows) <= GATE_MAX_IMAGES:
        return rows
    return np.sort(np.random.default_rng(seed).choice(rows, GATE_MAX_IMAGES, False))


def gate_features(
    config: TrainConfig,
    spec,
    data,
    cache_dir,
    extractor: Callable[[], Callable[[np.ndarray], np.ndarray]],
    echo: Callable[[str], None],
    splits: Sequence[str] = ("train", "val"),
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(features, image rows) of the gate's sample of each split, from the feature cache where
    they are (see :func:`training.fit.feature_cache.cached_features`)."""
    rows = {split: gate_sample(data.rows(split), config.seed) for split in splits}
    features = cached_features(
        spec,
        data.cache.images,
        rows,
        cache_dir,
        data.cache.key,
        config.weights,
        extractor,
        echo,
    )
    return features, rows


def head_rate(config: TrainConfig) -> float | None:
    """The head rate a sweep judges: none while it is still ``auto`` or with phase 1 skipped."""
    if config.lr == AUTO or config.epochs_head == 0:
        return None
    return float(config.lr)


def sweep_finding(
    x: np.ndarray,
    y: np.ndarray,
    num_classes: int,
    config: TrainConfig,
    learns: bool | None = None,
) -> Finding:
    """``lr_range`` on a fresh head (no dropout, no L2) over the gate's sample of ``x``, judging
    the run's head rate. ``learns``: whether ``overfit_tiny_subset`` passed (see
    :func:`training.babysit.lr_range.analyse_sweep`)."""
    sample = gate_sample(np.arange(len(x)), config.seed)

    def make_head():
        return build_head(
            x.shape[1],
            num_classes,
            dropout=0.0,
            l2=0.0,
            head_units=config.head_units,
            seed=config.seed,
        )

    rates, losses = sweep_learning_rates(
        make_head,
        x[sample],
        y[sample],
        lambda lr: make_optimizer(config.optimizer, lr),
        classification_loss(config.label_smoothing),
        config.batch_size,
        seed=config.seed,
    )
    return analyse_sweep(
        rates, losses, learns=learns, weights=config.weights, rate=head_rate(config)
    )


def resolve_auto(
    config: TrainConfig, finding: Finding, echo: Callable[[str], None]
) -> dict[str, dict[str, Any]]:
    """Set each ``auto`` rate of ``config`` from the sweep's ``finding`` and say so.

    Returns ``{"lr_auto": {"window": [low, high], "rate": r}, "finetune_lr_auto": …}`` for the
    rates that were ``auto``, also kept in ``finding.evidence``; ``window`` is None, and
    ``fallback`` says why, where the sweep found none and the default is used.
    """
    evidence = finding.evidence or {}
    window, rate = evidence.get("suggested"), evidence.get("suggested_rate")
    found = window is not None and rate is not None and finding.action is not None
    records: dict[str, dict[str, Any]] = {}
    for name in config.auto_rates:
        share = FINETUNE_SHARE if name == "finetune_lr" else 1.0
        value = float(f"{rate * share:.3g}") if found else DEFAULTS[name]
        record: dict[str, Any] = {"window": list(window) if found else None, "rate": value}
        if not found:
            record["fallback"] = f"no window where the loss falls ({finding.measured})"
        setattr(config, name, value)
        records[f"{name}_auto"] = record
        echo(auto_line(name, record))
    config.validate()
    finding.evidence = {**evidence, **records}
    return records


def auto_records(finding: Finding | None) -> dict[str, dict[str, Any]]:
    """``{"lr_auto": …, "finetune_lr_auto": …}`` of the sweep that picked them (for the summary)."""
    evidence = finding.evidence if finding is not None else {}
    return {f"{n}_auto": evidence[f"{n}_auto"] for n in DEFAULTS if f"{n}_auto" in evidence}


def auto_findings(auto: Finding | None) -> list[Finding]:
    """The ``--lr auto`` sweep as a train run keeps it: only where it found the window, and
    without its action (the window is in use; a later finding may still move the rate)."""
    if auto is None or auto.action is None:
        return []
    return [dataclasses.replace(auto, action=None)]


def underfit_rate(found: list[Finding], sweep: Callable[[], Finding] | None) -> list[Finding]:
    """When the fit underfits at a fixed head rate: ``sweep()`` on the run's own features, kept
    where it puts that rate outside the window, so the diagnosis names the rate, not capacity.
    Not where another finding already moves the head's rate (a flat or noisy curve names it)."""
    underfits = any(f.check == "underfitting" and f.status != "ok" for f in found)
    named = any((f.action or {}).get("param") == "lr" for f in found)
    if sweep is None or not underfits or named:
        return []
    finding = sweep()
    outside = (finding.action or {}).get("op") in ("raise", "lower")
    return [finding] if outside else []
