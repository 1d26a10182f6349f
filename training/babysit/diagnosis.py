"""One diagnosis per run: the root cause first, the findings it explains folded under it.

Every check judges its own numbers, so one fault shows up in several of them: features that
barely separate the classes make the learning-rate sweep shallow, the tiny subset slow to
memorise, the head's curve noisy, the run underfit and the search's best values sit anywhere.
Read one by one they contradict each other ("lower L2" beside "search L2 up to 1"). This module
reads them together, the way an expert would:

1. **Root cause**, deepest first: a model or input that cannot learn at all (frozen, constant
   images), a loss that exploded, training labels that do not match the images, features that
   carry (almost) no class information, a head rate below the range where the loss falls while
   the run underfits (the rate, not the capacity). Otherwise the worst remaining finding is the
   diagnosis.
2. **Folding**: a finding the root cause explains keeps its measurement and evidence, is marked
   ``evidence["explained_by"]`` (and ``evidence["status_before"]``), loses its action and reads
   ``ok``: it is a symptom, not a second thing to fix.
3. **Actions never conflict**: one per setting, the root cause's first; never the value in use.

:func:`reconcile` is pure and idempotent, so it runs before findings are stored and again
wherever they are shown (a search's stage findings are stored as they happen).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from training.babysit.advice import current_value, direction, render
from training.babysit.findings import Finding

LEARNING = frozenset(
    {
        "loss_curve",
        "loss_flat",
        "underfitting",
        "generalization_gap",
        "train_mode_gap",
        "lr_range",
        "overfit_tiny_subset",
        "edge_of_range",
        "val_at_chance",
    }
)
"""Checks that read how the model learned: every root cause below explains them."""
EXPLAINS: dict[str, frozenset[str]] = {
    "cannot_learn": LEARNING | {"regularization_raises_loss", "initial_loss", "label_noise"},
    "exploding_loss": LEARNING - {"lr_range", "overfit_tiny_subset"},
    "wrong_labels": LEARNING,
    # Not loss_flat: see diagnose_fit (a loss that does not move at all is the rate's doing).
    "weak_features": LEARNING - {"train_mode_gap", "loss_flat"},
    "rate_below_window": frozenset({"underfitting"}),
}
HEAD_ONLY = frozenset({"weak_features", "rate_below_window"})
"""Causes read on the head's features: they explain no phase-2 (fine-tuning) finding."""

SOME_LABELS_EXPLAIN = frozenset({"generalization_gap", "underfitting", "edge_of_range"})
"""What a share of wrong training labels explains: a training accuracy held below what the
features allow (they are scored against wrong labels too), and the gap that goes with it; not
how the loss moved (a head learns through 20% of wrong labels at any sane rate)."""


def _as_finding(finding: Finding | Mapping[str, Any]) -> Finding:
    return finding if isinstance(finding, Finding) else Finding.from_dict(finding)


def root_cause(findings: list[Finding]) -> tuple[str, Finding] | None:
    """(kind, the finding that shows it), deepest cause first; None when all is ok."""

    def first(test) -> Finding | None:
        return next((f for f in findings if test(f)), None)

    def evidence(f: Finding) -> Mapping[str, Any]:
        return f.evidence or {}

    # Not already folded under another cause (reconcile is idempotent).
    findings = [f for f in findings if "explained_by" not in evidence(f)]
    # CS231n's own test of "can it learn at all" names it first, then the others that fail
    # for the same reason (a frozen head fails the regularization check too).
    stuck = (
        first(lambda f: f.status == "fail" and f.check == "overfit_tiny_subset")
        or first(
            lambda f: (
                f.status == "fail"
                and f.check == "loss_flat"
                and evidence(f).get("trainable_parameters") == 0
            )
        )
        or first(
            lambda f: (
                f.status == "fail"
                and (
                    f.check in ("initial_loss", "regularization_raises_loss")
                    or (f.check == "lr_range" and evidence(f).get("cause") == "model")
                )
            )
        )
    )
    if stuck:
        return "cannot_learn", stuck
    exploded = first(
        lambda f: (
            (f.check == "loss_explosion" and f.status == "fail")
            or (f.check == "loss_curve" and f.measured == "diverged")
        )
    )
    if exploded:
        return "exploding_loss", exploded

    def blames(*causes: str) -> Finding | None:
        return first(
            lambda f: (
                f.check == "label_noise" and f.status != "ok" and evidence(f).get("cause") in causes
            )
        )

    labels = blames("labels")
    if labels:
        return "wrong_labels", labels
    noisy = blames("noisy_labels")
    if noisy:
        # Some wrong labels hold accuracy down but do not stop a head learning: a loss that
        # did not move at this rate (or rose) is the rate's, and no label fix changes it.
        rate = first(
            lambda f: (
                f.check in ("loss_flat", "loss_curve")
                and f.status != "ok"
                and (f.action or {}).get("param") in ("lr", "finetune_lr")
            )
        )
        return ("finding", rate) if rate else ("wrong_labels", noisy)
    weak = blames("features", "features_or_labels", "weak_features") or first(
        lambda f: (
            f.check == "lr_range" and f.status != "ok" and evidence(f).get("cause") == "features"
        )
    )
    if weak:
        return "weak_features", weak
    slow = first(
        lambda f: (
            f.check == "lr_range"
            and f.status != "ok"
            and (f.action or {}).get("op") == "raise"
            and (f.action or {}).get("param") == "lr"
        )
    )
    if slow and first(
        lambda f: (
            f.check in EXPLAINS["rate_below_window"]
            and f.status != "ok"
            and evidence(f).get("phase") != "finetune"
        )
    ):
        return "rate_below_window", slow
    worst = first(lambda f: f.status == "fail") or first(lambda f: f.status == "warn")
    return ("finding", worst) if worst else None


def _fold(finding: Finding, cause: Finding, kind: str) -> Finding:
    words = {
        "cannot_learn": "the model or its inputs cannot learn at all",
        "exploding_loss": "the loss exploded",
        "wrong_labels": "training labels do not match the images",
        "weak_features": "the features barely separate the classes",
        "rate_below_window": "the head's learning rate is below the window where the loss falls",
    }[kind]
    return dataclasses.replace(
        finding,
        status="ok",
        action=None,
        advice=finding.advice
        if "explained_by" in (finding.evidence or {})
        else f"Explained by {cause.check} ({words}): fix that first. {finding.advice}",
        evidence={
            **(finding.evidence or {}),
            # A finding diagnose_fit already pointed at this cause keeps its own words.
            "explained_by": (finding.evidence or {}).get("explained_by", cause.check),
            "status_before": finding.status,
        },
    )


def _one_action_per_setting(
    findings: list[Finding], first: Finding, settings: Mapping[str, Any]
) -> list[Finding]:
    """The root cause's action first, then each setting's first action; later ones (the same
    setting again, or the opposite move) dropped, and so is a move to the value in use (the
    run's, from ``settings``, or the action's own ``from``) before it can claim its setting."""
    seen: dict[str, Finding] = {}

    def in_use(action: Mapping[str, Any]) -> bool:
        to = action.get("to")
        if "from" in action and action.get("from") == to:
            return True
        param = action.get("param")
        return bool(param) and settings and current_value(settings, param) == to

    def claim(finding: Finding) -> Finding:
        action = finding.action
        if not action:
            return finding
        key = str(action.get("param") or action.get("op"))
        if in_use(action):
            return dataclasses.replace(finding, action=None)
        if key in seen:
            return _overruled(finding, seen[key])
        seen[key] = finding
        return finding

    out = list(findings)
    lead = next((i for i, f in enumerate(out) if f is first), None)
    if lead is not None:
        out[lead] = claim(out[lead])
    return [f if i == lead else claim(f) for i, f in enumerate(out)]


def _overruled(finding: Finding, first: Finding) -> Finding:
    """``finding`` without its action, which ``first`` (read first) already claimed for the same
    setting; when the two move it opposite ways, its evidence says so (``overruled_by``), so
    its advice is never read alone against the action shown."""
    mine, theirs = _way(finding.action), _way(first.action)
    evidence = dict(finding.evidence or {})
    if mine != theirs or mine is None:
        evidence["overruled_by"] = first.check
    return dataclasses.replace(finding, action=None, evidence=evidence)


def _way(action: Mapping[str, Any] | None) -> str | None:
    """ "up" or "down": a point move's, or a searched range's that lies wholly past the run's
    value (``from``); None when it cannot be told."""
    if not action:
        return None
    to, start = action.get("to"), action.get("from")
    if action.get("op") == "widen":  # a search range widened past its edge
        return {"high": "up", "low": "down"}.get(action.get("edge"))
    if isinstance(to, list | tuple) and len(to) == 2 and isinstance(start, int | float):
        if to[0] > start:
            return "up"
        return "down" if to[1] < start else None
    return direction(action)


def reconcile(
    findings: Iterable[Finding | Mapping[str, Any]],
    settings: Mapping[str, Any] | None = None,
) -> tuple[list[Finding], dict[str, Any]]:
    """(the findings with the explained ones folded and actions deduplicated, the diagnosis).

    The diagnosis: ``{"cause", "check", "status", "sentence", "actions", "explains"}``;
    ``cause`` is ``None`` and the sentence says so when nothing needs doing.
    """
    items = [_as_finding(f) for f in findings]
    found = root_cause(items)
    if found is None:
        return items, {
            "cause": None,
            "check": None,
            "status": "ok",
            "sentence": "Nothing to fix: every check passed.",
            "actions": [],
            "explains": [],
        }
    kind, cause = found
    explained = EXPLAINS.get(kind, frozenset())
    if kind == "wrong_labels" and (cause.evidence or {}).get("cause") == "noisy_labels":
        explained = SOME_LABELS_EXPLAIN
    folded = [
        _fold(f, cause, kind)
        if f is not cause
        and f.check in explained
        and f.status != "ok"
        and not (kind in HEAD_ONLY and f.evidence.get("phase") == "finetune")
        else f
        for f in items
    ]
    deduped = _one_action_per_setting(folded, cause, settings or {})
    cause = next(f for f, g in zip(deduped, folded, strict=True) if g is cause)
    return deduped, {
        "cause": kind,
        "check": cause.check,
        "status": cause.status,
        "sentence": sentence(kind, cause, settings or {}),
        "actions": actions(kind, cause, settings or {}),
        "explains": sorted(
            {f.check for f in deduped if (f.evidence or {}).get("explained_by") == cause.check}
        ),
    }


def _first_sentence(text: str) -> str:
    head, dot, _ = text.partition(". ")
    return head + "." if dot else text.rstrip()


def sentence(kind: str, cause: Finding, settings: Mapping[str, Any]) -> str:
    """One sentence naming the root cause."""
    evidence = cause.evidence or {}
    if kind == "weak_features":
        quality = evidence.get("feature_quality")
        chance = evidence.get("chance")
        measured = (
            f" (validation {quality:.0%} out of fold, chance {chance:.0%})"
            if isinstance(quality, int | float) and isinstance(chance, int | float)
            else ""
        )
        why = (
            "the backbone has random weights"
            if str(settings.get("weights", "")).lower() == "none"
            else "the backbone's features do not fit these images"
        )
        return (
            f"Weak features: the frozen backbone's features barely separate the classes"
            f"{measured}, because {why}; no learning rate, regularization or head size fixes "
            "that."
        )
    if kind == "wrong_labels":
        noise = evidence.get("noise") or {}
        if evidence.get("cause") == "noisy_labels" and all(
            isinstance(noise.get(k), int | float) for k in ("rate", "low", "high")
        ):
            return (
                f"Wrong labels: about {noise['rate']:.0%} ({noise['low']:.0%}–"
                f"{noise['high']:.0%}) of the training labels look wrong; fix them first, no "
                "setting trains around them."
            )
        return (
            "Wrong labels: the training labels do not match the images; fix them first, no "
            "setting trains around them."
        )
    if kind == "rate_below_window" and evidence.get("suggested"):
        floor, high = evidence.get("moves_from", 0.0), evidence["suggested"][1]
        return (
            f"Learning rate too low: the head's rate {evidence.get('rate', 0):g} is below the "
            f"range [{floor:.1e}, {high:.1e}] where the loss falls, so the head is undertrained; "
            "raise the rate before adding capacity."
        )
    if kind == "exploding_loss":
        return "Exploding loss: " + _first_sentence(cause.advice)
    if kind == "cannot_learn":
        return "Nothing can learn: " + _first_sentence(cause.advice)
    return _first_sentence(cause.advice).rstrip(".:") + f" (see {cause.check})."


def actions(kind: str, cause: Finding, settings: Mapping[str, Any]) -> list[str]:
    """One or two things to do, as the flags (or steps) a user applies."""
    if kind == "weak_features":
        out = []
        if str(settings.get("weights", "")).lower() == "none":
            out.append("--weights PATH (a pretrained weights file; imagenet where it downloads)")
        size = settings.get("image_size")
        if isinstance(size, int) and size < 224:
            out.append(f"--image-size {min(224, size * 2)}")
        elif str(settings.get("weights", "")).lower() != "none":
            out.append("another --backbone")
        return out[:2]
    if kind == "wrong_labels":
        count = (cause.evidence or {}).get("suspects_total")
        return [
            f"review the {count} labels worth a second look"
            if count
            else "look through the training folders by eye"
        ]
    rendered = render(cause.action)
    return [rendered] if rendered else []


def format_diagnosis(diagnosis: Mapping[str, Any]) -> str:
    """``Diagnosis: sentence`` and the actions, for the CLI."""
    lines = [f"Diagnosis: {diagnosis.get('sentence', '')}"]
    for action in diagnosis.get("actions") or []:
        lines.append(f"  → {action}")
    if diagnosis.get("explains"):
        lines.append(f"  (explains: {', '.join(diagnosis['explains'])})")
    return "\n".join(lines)
