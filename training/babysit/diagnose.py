"""Diagnoses after a fit, as one consistent story: causes before consequences.

The checks themselves live in :mod:`training.babysit.curves` (one phase's loss curve) and
:mod:`training.babysit.scores` (the inference-mode scores); each returns a finding whether the
run is healthy or not, or ``None`` when the data it judges is missing. :func:`diagnose_fit` runs
them all and reconciles them: a finding whose numbers a deeper failure explains (a gap caused by
validation at chance, a low accuracy caused by broken BatchNorm statistics, wrong training
labels, or a loss that never moved) is kept with its measurement, capped at ``warn``, loses its
action and points at the cause; and at most one finding per setting carries an action, so a
search never applies the same (or an opposite) change twice.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from training.babysit.advice import stronger_features
from training.babysit.curves import loss_curve, loss_flat
from training.babysit.findings import Finding
from training.babysit.history import PHASES, History
from training.babysit.scores import (
    batchnorm_mismatch,
    generalization_gap,
    train_mode_gap,
    underfitting,
    val_at_chance,
)

__all__ = [
    "batchnorm_mismatch",
    "diagnose_fit",
    "generalization_gap",
    "loss_curve",
    "loss_flat",
    "train_mode_gap",
    "underfitting",
    "val_at_chance",
]


def _explained(finding: Finding | None, cause: Finding, advice: str) -> Finding | None:
    """A finding whose numbers another failure explains: kept, capped at warn, no action.

    The first cause found (the deepest: causes are applied deepest first) is the one named."""
    if finding is None or finding.status == "ok" or "explained_by" in finding.evidence:
        return finding
    return dataclasses.replace(
        finding,
        status="warn",
        advice=advice,
        action=None,
        evidence={**finding.evidence, "explained_by": cause.check},
    )


def _one_action_per_setting(findings: list[Finding]) -> list[Finding]:
    """The first finding to act on a setting (or op) keeps its action; later ones drop theirs,
    so a search never applies a change twice or two opposite changes."""
    seen: set[tuple[str | None, str | None]] = set()
    out = []
    for finding in findings:
        if finding.action:
            param = finding.action.get("param")
            key = (param, None if param else finding.action.get("op"))
            if key in seen:
                finding = dataclasses.replace(finding, action=None)
            else:
                seen.add(key)
        out.append(finding)
    return out


def _label_noise(causes: Iterable[Finding], blamed: str) -> Finding | None:
    """The ``label_noise`` finding when it blames ``blamed`` ("labels" or "features")."""
    for cause in causes:
        if (
            cause.check == "label_noise"
            and cause.status != "ok"
            and (cause.evidence.get("cause") == blamed)
        ):
            return cause
    return None


def diagnose_fit(
    histories: Mapping[str, History],
    summary: Mapping[str, Any],
    num_classes: int,
    settings: Mapping[str, Any] | None = None,
    *,
    causes: Iterable[Finding] = (),
    trainable: Mapping[str, int] | None = None,
) -> list[Finding]:
    """Every diagnosis of a finished fit, causes before consequences.

    Order: ``loss_flat`` and ``loss_curve`` for phase 1 then phase 2 (``evidence["phase"]``
    says which), then ``batchnorm_mismatch`` and ``train_mode_gap`` (the summary against the
    last phase's history), ``val_at_chance``, ``generalization_gap`` and ``underfitting``.

    Contradictions are resolved, keeping every measurement:

    - ``label_noise`` (among ``causes``) blaming the labels explains the curves, the gap and
      underfitting: no learning rate or capacity fixes wrong labels. Blaming the features (at
      chance in both splits) it explains phase 1's curve: a head cannot learn from nothing
      (but not ``loss_flat``: even then the training loss moves at a sane rate).
    - ``val_at_chance`` failing explains ``generalization_gap``: the gap is a split mismatch,
      not overfitting, and raising L2 would not help.
    - ``batchnorm_mismatch`` failing explains ``generalization_gap`` and ``underfitting``: the
      inference-mode scores they read are distorted.
    - every phase's curve ``flat`` explains ``underfitting``: the rate, not capacity, is wrong.
    - ``train_mode_gap`` warning explains its phase's curves: dropout shapes the fit's loss.
    - a ``late_start`` curve explains its phase's ``loss_flat``: the loss did fall later.

    An explained finding is capped at ``warn``, loses its action, names its cause in
    ``evidence["explained_by"]`` and says so in its advice. Then at most one finding per
    setting keeps an action.

    Args:
        histories: ``{"head": [...], "finetune": [...]}``; either may be absent or empty.
        summary: Inference-mode scores after training (``train``, ``val``, ``test``, ``gap``).
        num_classes: Number of classes.
        settings: The run's config (``TrainConfig`` fields): advice starts from these values.
        causes: Findings measured before the fit (``label_noise``) that may explain these.
        trainable: Trainable parameters per phase (0: nothing could learn).

    Returns:
        The findings of the checks that had data to judge.
    """
    histories = histories or {}
    findings: list[Finding | None] = []
    curves: list[Finding] = []
    last: History = []
    last_phase = "head"
    for phase in PHASES:
        history = histories.get(phase) or []
        if not history:
            continue
        last, last_phase = history, phase
        flat = loss_flat(
            history,
            num_classes,
            phase=phase,
            settings=settings,
            trainable=(trainable or {}).get(phase),
        )
        # Each epoch averages ceil(training images / batch size) batch losses: loss_curve
        # allows for that sampling noise before it calls a curve noisy.
        images = ((summary or {}).get("splits") or {}).get("train")
        batch = (settings or {}).get("batch_size")
        counted = isinstance(images, int) and isinstance(batch, int) and images > 0 and batch > 0
        curve = loss_curve(
            history,
            num_classes,
            phase=phase,
            settings=settings,
            batches_per_epoch=-(-images // batch) if counted else None,
        )
        if curve is not None:
            curves.append(curve)
            if curve.measured == "late_start":
                flat = _explained(
                    flat,
                    curve,
                    "The loss did fall later (a late start, see loss_curve): test the "
                    "initialisation before raising the rate.",
                )
            if flat is not None and flat.status == "fail":  # nothing trainable: not the rate
                curve = _explained(curve, flat, flat.advice)
        findings += [flat, curve]

    bn = batchnorm_mismatch(last, summary, num_classes) if last else None
    regularized = train_mode_gap(last, summary, settings, last_phase) if last else None
    if regularized is not None and regularized.status != "ok":
        noisy = (
            "The loss during fit is measured with dropout (and augmentation) acting, which "
            "hold it up (see train_mode_gap): lower them before reading this curve."
        )
        findings = [
            _explained(f, regularized, noisy)
            if f is not None and f.evidence.get("phase") == last_phase
            else f
            for f in findings
        ]
    chance = val_at_chance(summary, num_classes)
    gap = generalization_gap(summary, settings)
    under = underfitting(summary, num_classes, settings)
    labels = _label_noise(causes, "labels")
    weak = _label_noise(causes, "features")
    if weak is not None:
        finetuned = (settings or {}).get("epochs_finetune") or 0
        blind = (
            "The frozen backbone's features carry no class information (see label_noise): no "
            f"learning rate lets the head learn from them. Use {stronger_features(settings)}, "
            "a larger --image-size" + ("." if finetuned else ", or fine-tune the backbone.")
        )
        # Not loss_flat: a head fits its own training images even on features that carry
        # nothing that generalises (the fault zoo's chance-level ant/bee features fell 7.7% in
        # three epochs at a sane rate, 0% at 1e-4 of it), so a loss that does not move at all
        # is the rate or a frozen head, whatever the features.
        findings = [
            _explained(f, weak, blind)
            if f is not None and f.evidence.get("phase") == "head" and f.check != "loss_flat"
            else f
            for f in findings
        ]
    if labels is not None:
        wrong = (
            "The training labels do not match the images (see label_noise): no learning rate, "
            "regularization or capacity fixes that. Fix the labels first."
        )
        findings = [_explained(f, labels, wrong) for f in findings]
        gap = _explained(gap, labels, wrong)
        under = _explained(under, labels, wrong)
    if bn is not None and bn.status == "fail":
        distorted = (
            "Inference-mode accuracy is distorted by BatchNorm statistics (see "
            "batchnorm_mismatch): fix that first; this number will change."
        )
        gap = _explained(gap, bn, distorted)
        under = _explained(under, bn, distorted)
    if chance is not None and chance.status == "fail":
        gap = _explained(
            gap,
            chance,
            "The gap comes from validation at chance (see val_at_chance), not from ordinary "
            "overfitting: fix the splits first; more regularization will not close it.",
        )
    if curves and all(c.measured == "flat" for c in curves):
        under = _explained(
            under,
            curves[0],
            "The training loss never fell (see loss_curve): fix the learning rate before "
            "adding capacity.",
        )
    findings += [bn, regularized, chance, gap, under]
    return _one_action_per_setting([f for f in findings if f is not None])
