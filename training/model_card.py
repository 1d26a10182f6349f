"""``python -m training runs report RUN``: a model card in Markdown, written from the run store.

Everything in it is read back from what the run stored (its config, summary, findings, the
validation predictions and the runs that applied its findings); nothing is recomputed from the
images or the model, so a card can be written for any completed run whose folder is still there,
in a fraction of a second. Sections a run did not measure (calibration, the learning curve) say
"not measured" instead of being left out, so a reader knows what was not checked.

A search's card describes its model: the fine-tune that won, with the search's own findings,
learning curve and trial counts.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from training import __version__
from training.atomic import write_text
from training.config import TrainConfig
from training.errors import ConfigError, ExportError, RunNotFoundError
from training.fields import to_argv
from training.fit.class_weights import per_class_scores
from training.store import Run, RunStore

MARK = "<!-- babysitter model card -->"
"""The card's first line: ``--output`` replaces only a file that starts with it."""
SUFFIXES = (".md", ".markdown")
NOT_MEASURED = "Not measured"
AUDIT_CHECKS = ("leakage", "class_balance", "too_few_images")
Z95 = 1.96


def model_card(store: RunStore, run_id: str) -> str:
    """The Markdown model card of run ``run_id`` (an id or a unique prefix)."""
    run = store.get_run(run_id)
    model_run = _model_run(store, run)
    summary = run.summary or {}
    findings = store.findings(run.id)
    scores = _per_class(store.artifact(run.id, "predictions"))
    parts = [
        MARK,
        f"# Model card: {summary.get('backbone') or run.label} on {_dataset_name(run)}",
        "",
        f"Run `{run.id}` ({run.kind}, completed {run.updated_at[:19].replace('T', ' ')} UTC), "
        f"written by Babysitter {__version__} from its run store on "
        f"{datetime.now(UTC):%Y-%m-%d}.",
        *_search_note(run, model_run),
        "",
        *_data(run, model_run, findings),
        *_backbone(model_run),
        *_config(model_run),
        *_results(summary),
        *_classes(scores),
        *_calibration(summary),
        *_findings(store, run, model_run, findings),
        *_learning_curve(summary, findings),
        *_use_and_limits(run, summary, findings, scores),
    ]
    return "\n".join(parts).rstrip() + "\n"


def _model_run(store: RunStore, run: Run) -> Run:
    """The run whose model the card describes: the run itself, or a search's best fine-tune."""
    if run.status != "completed":
        raise ConfigError(
            f"Run {run.id} is {run.status}: a model card describes a finished model. Use "
            f"`python -m training runs show {run.id}` for what it recorded."
        )
    if run.kind == "train":
        return run
    best = (run.summary or {}).get("best_run") if run.kind == "search" else None
    if not best:
        what = "a head search only (--top-k 0)" if run.kind == "search" else f"a {run.kind} run"
        raise ConfigError(
            f"Run {run.id} is {what}, with no trained model to describe. Give a train run, or "
            "a search that fine-tuned its best configurations."
        )
    try:
        return store.get_run(best)
    except RunNotFoundError:
        raise ConfigError(
            f"Search {run.id}'s model was trained in run {best}, which is no longer in the store."
        ) from None


def _dataset_name(run: Run) -> str:
    return f"`{Path(run.dataset).name}`" if run.dataset else "its dataset"


def _search_note(run: Run, model_run: Run) -> list[str]:
    if run is model_run:
        return []
    trials = (run.summary or {}).get("trials") or {}
    return [
        "",
        f"The model is search `{run.id}`'s best configuration (trial "
        f"{(run.summary or {}).get('best_trial', '?')} of {trials.get('completed', '?')} "
        f"completed), fine-tuned in full as run `{model_run.id}`; its config is below.",
    ]


def _pct(value: Any, signed: bool = False) -> str:
    if not isinstance(value, int | float) or not math.isfinite(value):
        return "–"
    return f"{value:+.1%}" if signed else f"{value:.1%}"


def _finding(findings: list[dict], check: str) -> dict | None:
    return next((f for f in findings if f.get("check") == check), None)


def _table(headers: list[str], rows: list[list[Any]]) -> list[str]:
    """A Markdown table; ``|`` inside a cell escaped."""

    def cell(value: Any) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    return lines + ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]


def _data(run: Run, model_run: Run, findings: list[dict]) -> list[str]:
    summary = model_run.summary or {}
    classes = summary.get("classes") or (run.summary or {}).get("classes") or []
    splits = summary.get("splits") or {}
    out = ["## Data", "", f"- Dataset: `{run.dataset}`"]
    out.append(f"- {len(classes)} classes: {', '.join(f'`{c}`' for c in classes)}")
    if splits:
        split_text = ", ".join(f"{name} {count}" for name, count in splits.items())
        out.append(f"- Split sizes (images): {split_text}")
    balance = _finding(findings, "class_balance")
    counts = ((balance or {}).get("evidence") or {}).get("counts") or {}
    if counts:
        ratio = balance.get("measured")
        out.append(
            f"- Images per class: {', '.join(f'{c} {n}' for c, n in counts.items())} "
            f"(largest/smallest {ratio}: {balance.get('status')})"
        )
    weights = summary.get("class_weights") or {}
    if weights:
        applied = weights.get("applied")
        out.append(
            f"- Class weights: {weights.get('setting')}, "
            + ("the loss weighted by inverse class frequency" if applied else "no weighting")
        )
    for check, label in (
        ("leakage", "Leakage verdict"),
        ("too_few_images", "Training images in the smallest class"),
    ):
        found = _finding(findings, check)
        if found:
            out.append(f"- {label}: **{found.get('status')}** ({found.get('measured')})")
    return [*out, ""]


def _weights_text(weights: str) -> str:
    if weights == "imagenet":
        return "ImageNet (keras.applications)"
    if weights == "none":
        return "none: random initial weights, trained from scratch"
    return f"a local weights file, `{Path(weights).name}`"


def _backbone(model_run: Run) -> list[str]:
    summary, config = model_run.summary or {}, model_run.config or {}
    epochs = summary.get("epochs") or {}
    out = ["## Backbone and weights", ""]
    out.append(
        f"- Backbone: {summary.get('backbone') or config.get('backbone')} (keras.applications)"
    )
    out.append(f"- Initial weights: {_weights_text(str(config.get('weights', 'imagenet')))}")
    out.append(
        f"- Input: RGB uint8 at {summary.get('image_size', '?')} px (resized inside predict)"
    )
    out.append(
        f"- Training: phase 1 (head) {epochs.get('head', 0)} epochs, phase 2 (fine-tune) "
        f"{epochs.get('finetune', 0)} epochs; precision {summary.get('precision', '?')}"
    )
    return [*out, ""]


def _config(model_run: Run) -> list[str]:
    config = dict(model_run.config or {})
    out = ["## Configuration", ""]
    try:
        argv = to_argv(TrainConfig.from_dict(config))
        out += ["```bash", "python -m training train " + " ".join(argv), "```", ""]
    # A config from another version, or missing a field: the table still says what it was.
    except (ConfigError, TypeError):
        pass
    rows = [[f"`{k}`", "–" if v is None else v] for k, v in sorted(config.items())]
    return [*out, *_table(["field", "value"], rows), ""]


def _results(summary: Mapping[str, Any]) -> list[str]:
    out = ["## Accuracy", ""]
    rows = [
        [split, _pct(s.get("accuracy")), f"{s.get('loss', math.nan):.4f}", s.get("images", "–")]
        for split in ("train", "val", "test")
        if isinstance(s := summary.get(split), Mapping)
    ]
    if rows:
        out += _table(["split", "accuracy", "loss", "images"], rows)
        out.append("")
    out.append(
        f"- Gap (train − val accuracy, inference mode): {_pct(summary.get('gap'), signed=True)}"
    )
    val = summary.get("val") or {}
    if val.get("images"):
        low, high = wilson(float(val["accuracy"]), int(val["images"]))
        out.append(
            f"- Validation accuracy 95% interval: {low:.1%}–{high:.1%} ({val['images']} images)"
        )
    return [*out, ""]


def _images(count: int) -> str:
    return f"{count} image" + ("" if count == 1 else "s")


def wilson(p: float, n: int) -> tuple[float, float]:
    """The Wilson score interval of an accuracy ``p`` on ``n`` images (95%)."""
    z2 = Z95 * Z95
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _per_class(path: Path) -> dict[str, dict] | None:
    """Per-class precision, recall, images and the class most often predicted instead, from
    the stored validation predictions (None without them)."""
    try:
        with np.load(path) as saved:
            names = [str(n) for n in saved["class_names"]]
            labels, probabilities = saved["labels"], saved["probabilities"]
    except (OSError, KeyError, ValueError):
        return None
    scores = per_class_scores(labels, probabilities, names)
    guesses = np.asarray(probabilities).argmax(axis=1)
    for index, name in enumerate(names):
        scores[name]["confused"] = "–"
        wrong = guesses[(labels == index) & (guesses != index)]
        if len(wrong):
            common = np.bincount(wrong, minlength=len(names))
            scores[name]["confused"] = f"{names[int(common.argmax())]} ({common.max()})"
    return scores


def _classes(scores: dict[str, dict] | None) -> list[str]:
    out = ["## Per-class precision and recall", ""]
    if scores is None:
        return [*out, f"{NOT_MEASURED}: the run has no stored validation predictions.", ""]
    rows = [
        [f"`{name}`", s["images"], _pct(s["precision"]), _pct(s["recall"]), s["confused"]]
        for name, s in scores.items()
    ]
    out.append("On the validation images, from the predictions the run stored.")
    out.append("")
    headers = ["class", "images", "precision", "recall", "most often predicted instead"]
    return [*out, *_table(headers, rows), ""]


def _calibration(summary: Mapping[str, Any]) -> list[str]:
    out = ["## Calibration", ""]
    before, after = summary.get("ece_before"), summary.get("ece_after")
    record = summary.get("calibration") or {}
    if isinstance(before, int | float):
        line = f"- Expected calibration error (15 bins, validation): {_pct(before)}"
        if isinstance(after, int | float):
            line += f" before, {_pct(after)} after temperature scaling"
        out.append(line)
        temperature = summary.get("temperature")
        if isinstance(temperature, int | float):
            out.append(
                f"- Temperature (inside the saved model, before the softmax): {temperature:.3g}"
            )
    else:
        reason = record.get("reason") if isinstance(record, Mapping) else None
        out.append(f"{NOT_MEASURED}" + (f": {reason}." if reason else "."))
    return [*out, ""]


def _findings(store: RunStore, run: Run, model_run: Run, findings: list[dict]) -> list[str]:
    out = ["## Findings and what was done about them", ""]
    diagnosis = (run.summary or {}).get("diagnosis") or {}
    if diagnosis.get("sentence"):
        out += [f"**Diagnosis:** {diagnosis['sentence']}", ""]
    origin = str((model_run.config or {}).get("origin") or "")
    if origin:
        source, _, check = origin.partition(":")
        out += [f"This run applies the `{check}` finding of run `{source}`.", ""]
    applied = _applied_by(store, {run.id, model_run.id})
    weighted = ((model_run.summary or {}).get("class_weights") or {}).get("applied")
    rows = []
    for f in (f for f in findings if f.get("status") in ("warn", "fail")):
        done = [f"applied in run `{rid}` ({status})" for rid, status in applied.get(f["check"], [])]
        if f["check"] == "class_balance" and weighted:
            done.append("loss weighted by inverse class frequency in this run")
        done_text = "; ".join(done) or "–"
        rows.append([f["check"], f["status"], f.get("measured", ""), f.get("advice"), done_text])
    if rows:
        out += _table(["check", "status", "measured", "advice", "done"], rows)
    else:
        out.append("No check warned or failed.")
    passed = sorted({f["check"] for f in findings if f.get("status") == "ok"})
    if passed:
        out += ["", f"Checks that passed: {', '.join(passed)}."]
    return [*out, ""]


def _applied_by(store: RunStore, run_ids: set[str]) -> dict[str, list[tuple[str, str]]]:
    """check → [(run id, status)] of the runs started from a finding of ``run_ids``."""
    found: dict[str, list[tuple[str, str]]] = {}
    for other in store.list_runs():
        source, _, check = str((other.config or {}).get("origin") or "").partition(":")
        if source in run_ids and check:
            found.setdefault(check, []).append((other.id, other.status))
    return found


def _learning_curve(summary: Mapping[str, Any], findings: list[dict]) -> list[str]:
    out = ["## Learning curve", ""]
    finding = _finding(findings, "more_data")
    curve = summary.get("learning_curve")
    if finding:
        out.append(f"- {finding.get('measured')}")
        if finding.get("advice"):
            out.append(f"- {finding['advice']}")
    elif isinstance(curve, Mapping):
        out.append(
            f"- verdict: {curve.get('verdict', '?')}"
            + (f" ({curve['reason']})" if curve.get("reason") else "")
        )
        for projection in curve.get("projections") or []:
            out.append(
                f"- at {projection.get('multiple')}× the training images: "
                f"{_pct(projection.get('accuracy'))} ({_pct(projection.get('low'))}–"
                f"{_pct(projection.get('high'))})"
            )
    else:
        out.append(f"{NOT_MEASURED}.")
    return [*out, ""]


def _use_and_limits(
    run: Run, summary: Mapping[str, Any], findings: list[dict], scores: dict | None
) -> list[str]:
    classes = summary.get("classes") or []
    out = ["## Intended use and limits", ""]
    out.append(
        f"- Intended use: sorting images like those in {_dataset_name(run)} into one of its "
        f"{len(classes)} classes. Images go in raw (any size, RGB); the model resizes them and "
        "carries its own preprocessing."
    )
    out.append(
        "- It always answers with one of these classes: an image of anything else gets one of "
        'them too, often with a high probability. There is no "none of these".'
    )
    out.append(
        "- It learned from these images only: photos from another camera, light, background "
        "or source may score lower than the accuracy above."
    )
    val = summary.get("val") or {}
    if val.get("images"):
        low, high = wilson(float(val["accuracy"]), int(val["images"]))
        out.append(
            f"- The accuracy is measured on {val['images']} validation images: the true "
            f"accuracy likely lies within {low:.0%}–{high:.0%} (95% interval)."
        )
    if scores:
        judged = {n: s for n, s in scores.items() if s["recall"] is not None}
        if judged:
            weakest = min(judged, key=lambda n: judged[n]["recall"])
            out.append(
                f"- Weakest class: `{weakest}`, recall {_pct(judged[weakest]['recall'])} on "
                f"{_images(judged[weakest]['images'])}."
            )
    for check in AUDIT_CHECKS:
        found = _finding(findings, check)
        if found and found.get("status") in ("warn", "fail"):
            out.append(f"- Data check `{check}` {found['status']}s: {found.get('advice', '')}")
    if not isinstance(summary.get("ece_after", summary.get("ece_before")), int | float):
        out.append(
            "- Calibration was not measured: read the probabilities as scores, not as the "
            "chance of being right."
        )
    return [*out, ""]


def write_card(text: str, output: Path | str) -> Path:
    """Write ``text`` to ``output`` (a ``.md`` file) and return its path. An existing file is
    replaced only when it is an earlier model card (it starts with :data:`MARK`); anything
    else is refused and left as it was."""
    target = Path(os.path.abspath(Path(output).expanduser()))
    if target.suffix.lower() not in SUFFIXES:
        raise ConfigError(f"Expected --output to end in .md. Received: {target}.")
    if target.is_dir() or target.is_symlink():
        raise ExportError(f"{target} is a folder or a link; nothing was changed. Name a .md file.")
    if target.exists() and not _earlier_card(target):
        raise ExportError(
            f"{target} already exists and is not a model card Babysitter wrote; nothing was "
            "changed. Choose another --output."
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    write_text(target, text)
    return target


def _earlier_card(path: Path) -> bool:
    try:
        with open(path, encoding="utf-8", errors="replace") as fp:
            return fp.readline().strip() == MARK
    except OSError:
        return False
