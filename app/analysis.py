"""Numbers the pages show, computed from the run store's rows and artefacts (no Streamlit here)."""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from app.roots import data_roots, within_roots
from training.errors import BabysitterError, ConfigError
from training.jobs import Job
from training.store import Run, RunStore, shown_status
from training.store.trials import stages, trials
from tuner.stages import plan_stages

PERCENT_FORMAT = "%.1f%%"
"""The one percent format of the app (tables hold percent points, e.g. 54.5 shown "54.5%")."""
_TRACEBACK_END = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit)\b")


def search_progress(store: RunStore, run_id: str) -> dict[str, Any]:
    """Trials done / planned and the stage being searched. Planned is the search's own plan
    (:func:`planned_stages`) from the first draw; a stage's recorded count wins once it starts,
    so the totals never grow as stages open."""
    recorded = stages(store, run_id)
    done = trials(store, run_id)
    plan = dict(enumerate(planned_stages(store.get_run(run_id).config), start=1))
    plan.update({s["stage"]: s["trials"] for s in recorded})
    current = max(
        [t["stage"] for t in done] + [s["stage"] for s in recorded], default=min(plan, default=0)
    )
    return {
        "done": len(done),
        "planned": sum(plan.values()),
        "stage": current,
        "stages": len(plan),
        "failed": sum(t["status"] != "completed" for t in done),
    }


def planned_stages(config: Mapping[str, Any]) -> list[int]:
    """Trials per stage as the search plans them (``tuner.stages.plan_stages``, the one split of
    ``trials`` over ``stages``); none when the config holds no usable plan."""
    try:
        return plan_stages(config.get("trials"), config.get("stages"))
    except ConfigError:
        return []


def finetune_progress(store: RunStore, run: Run) -> dict[str, Any]:
    """A search's top-K fine-tunes: planned, finished, and the one in progress (``current``: its
    ``finetuning`` event; ``run``: its train run once created or resumed, else None)."""
    events = store.events(run.id)
    started = [e for e in events if e.get("event") == "finetuning"]
    done = [e for e in events if e.get("event") == "finetuned"]
    finished = {e.get("trial_id") for e in done}
    current = next((e for e in reversed(started) if e.get("trial_id") not in finished), None)
    planned = started[-1].get("of") if started else run.config.get("top_k")
    return {
        "planned": int(planned or 0),
        "done": done,
        "current": current,
        "run": _finetune_run(store, events, current) if current else None,
    }


def _finetune_run(store: RunStore, events: list[dict], current: Mapping[str, Any]) -> Run | None:
    """The train run the search recorded for the fine-tune in progress (the newest link: a
    resumed fine-tune links its run again)."""
    links = [
        e
        for e in events
        if e.get("event") == "finetune_run" and e.get("trial_id") == current.get("trial_id")
    ]
    if not links:
        return None
    try:
        return store.get_run(links[-1]["run"])
    except (BabysitterError, KeyError):
        return None


def train_progress(run: Run, epochs: list[dict[str, Any]]) -> dict[str, Any]:
    """Epochs done / planned over both phases."""
    planned = int(run.config.get("epochs_head") or 0) + int(run.config.get("epochs_finetune") or 0)
    phase = epochs[-1]["phase"] if epochs else "starting"
    return {"done": len(epochs), "planned": planned, "phase": phase}


def load_predictions(path: Path) -> dict[str, np.ndarray] | None:
    """The run's ``predictions.npz`` (validation rows, labels, probabilities, class names)."""
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def confusion(labels: np.ndarray, predicted: np.ndarray, classes: int) -> np.ndarray:
    matrix = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(matrix, (labels.astype(int), predicted.astype(int)), 1)
    return matrix


def per_class(matrix: np.ndarray, class_names: list[str]) -> list[dict[str, Any]]:
    """Precision, recall and support per class (NaN-free: 0 when a class is never predicted)."""
    rows = []
    for i, name in enumerate(class_names):
        tp = int(matrix[i, i])
        predicted, actual = int(matrix[:, i].sum()), int(matrix[i, :].sum())
        rows.append(
            {
                "class": name,
                "precision": tp / predicted if predicted else 0.0,
                "recall": tp / actual if actual else 0.0,
                "support": actual,
            }
        )
    return rows


def worst_mistakes(pred: dict[str, np.ndarray], limit: int = 12) -> list[dict[str, Any]]:
    """Wrong predictions, most confident first."""
    probs = pred["probabilities"]
    labels = pred["labels"].astype(int)
    guess = probs.argmax(axis=1)
    names = [str(n) for n in pred["class_names"]]
    wrong = np.flatnonzero(guess != labels)
    order = wrong[np.argsort(-probs[wrong, guess[wrong]])][:limit]
    return [
        {
            "rel": str(pred["rels"][i]),
            "true": names[labels[i]],
            "predicted": names[guess[i]],
            "confidence": float(probs[i, guess[i]]),
        }
        for i in order
    ]


def cell_images(
    pred: dict[str, np.ndarray], true_index: int, predicted_index: int
) -> list[dict[str, Any]]:
    """The validation images one confusion-matrix cell counts (true class ``true_index``,
    predicted ``predicted_index``), most confident first: the images behind a number, to see
    whether the model or the labels are wrong."""
    probs = pred["probabilities"]
    confidence = probs[:, predicted_index]
    in_cell = (pred["labels"].astype(int) == true_index) & (probs.argmax(axis=1) == predicted_index)
    rows = np.flatnonzero(in_cell)
    rows = rows[np.argsort(-confidence[rows], kind="stable")]
    return [{"rel": str(pred["rels"][i]), "confidence": float(confidence[i])} for i in rows]


def most_confused(matrix: np.ndarray) -> tuple[int, int]:
    """The cell the drill-down opens on: the most frequent mistake (true, predicted), else the
    first class's correct predictions."""
    off_diagonal = np.where(np.eye(len(matrix), dtype=bool), -1, matrix)
    if off_diagonal.size == 0 or off_diagonal.max() <= 0:
        return 0, 0
    true_index, predicted_index = np.unravel_index(off_diagonal.argmax(), off_diagonal.shape)
    return int(true_index), int(predicted_index)


def trial_rows(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Flat rows for the trials table: id, stage, status, score (percent points), seconds, each
    hyperparameter to 3 significant digits."""
    rows = []
    for t in found:
        row = {
            "trial": t["trial_id"],
            "stage": t["stage"],
            "status": t["status"],
            "val_accuracy": percent_points(t["score"]),
            "seconds": round(t["seconds"] or 0.0, 2),
        }
        row.update({k: sig3(v) for k, v in t["hyperparameters"].items()})
        if t.get("error"):
            row["error"] = t["error"]
        rows.append(row)
    return rows


def safe_image(root: Path, rel: str) -> Path | None:
    """``root/rel`` if it is a file inside ``root`` (a stored rel cannot point elsewhere) and
    ``root`` lies under the app's data roots: thumbnails never leave them."""
    roots = data_roots(RunStore.resolve_home())
    try:
        path = (root / rel).resolve()
        path.relative_to(root.resolve())
    except (ValueError, OSError):
        return None
    if within_roots(path, roots) is None:
        return None
    return path if path.is_file() else None


def sig3(value: Any) -> Any:
    """A hyperparameter as people read it: a float to 3 significant digits (0.000123, not
    0.00012345678901234567); anything else as it is."""
    if isinstance(value, float) and math.isfinite(value):
        return float(f"{value:.3g}")
    return value


def percent(value: float | None, signed: bool = False) -> str:
    """A fraction in the app's one percent format ("54.5%", "+3.2%" signed); "–" for none."""
    if value is None:
        return "–"
    return f"{value:+.1%}" if signed else f"{value:.1%}"


def gap_text(summary: Mapping[str, Any] | None) -> str:
    """The run's accuracy gap, the one way every page states it: inference-mode training
    accuracy minus validation accuracy, measured after training ("+1.2% (train 55.7%, val
    54.5%; inference mode)"); "–" until the run has it. The per-epoch curves logged in fit mode
    (dropout and augmentation on) are not this number, and the charts say so."""
    summary = summary or {}
    gap = summary.get("gap")
    if not isinstance(gap, int | float) or not math.isfinite(gap):
        return "– (measured in inference mode when training ends)"
    train = (summary.get("train") or {}).get("accuracy")
    val = (summary.get("val") or {}).get("accuracy")
    return (
        f"{percent(gap, signed=True)} (train {percent(train)}, val {percent(val)}; inference mode)"
    )


def percent_points(value: float | None) -> float | None:
    """A fraction as percent points for a table column shown with :data:`PERCENT_FORMAT`."""
    return None if value is None else round(100 * value, 1)


def finding_settings(store: RunStore, run: Run) -> dict[str, Any]:
    """The settings a run's advice starts from: its config; for a search, the config of the
    fine-tune its findings came from (else the best trial's hyperparameters over its config)."""
    summary = run.summary or {}
    if run.kind == "search" and summary.get("best_run"):
        try:
            return store.get_run(summary["best_run"]).config
        except BabysitterError:  # a deleted child: the search's own values still help
            pass
    return {**run.config, **(summary.get("hyperparameters") or {})}


def command_settings(args: Iterable[str]) -> dict[str, Any]:
    """``--flag VALUE`` pairs of a job's command as settings (numbers parsed): what the advice
    of a job that failed before creating a run starts from."""
    settings: dict[str, Any] = {}
    for name, value in itertools.pairwise(args):
        if name.startswith("--") and not value.startswith("--"):
            settings[name[2:].replace("-", "_")] = _parsed(value)
    return settings


def _parsed(value: str) -> Any:
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            continue
    return value


def error_line(log: str) -> str | None:
    """Why a command failed, from its log: the CLI's last ``error:`` line, else the last line
    of a traceback; None when the log says neither (a kill leaves no message)."""
    lines = [line.strip() for line in log.splitlines()]
    for line in reversed(lines):
        if line.startswith("error:"):
            return line.removeprefix("error:").strip()
    return next((line for line in reversed(lines) if _TRACEBACK_END.match(line)), None)


def finished_gate(run: Run | None) -> bool:
    """A sanity gate that ran to the end: its verdict, not its exit code, is its story."""
    return run is not None and run.kind == "check" and run.status == "completed"


def gate_status(run: Run, findings: Iterable[Mapping[str, Any]]) -> str:
    """A finished gate in words: "completed — gate failed: 2 checks" (Runs and Monitor both)."""
    verdict = (run.summary or {}).get("gate", "ok")
    count = sum(f.get("status") == verdict for f in findings)
    if verdict == "fail":
        return f"completed — gate failed: {count} check{'s' * (count != 1)}"
    if verdict == "warn":
        return f"completed — gate passed with {count} warning{'s' * (count != 1)}"
    return "completed — gate passed"


def shown_run_status(run: Run, findings: Iterable[Mapping[str, Any]] = ()) -> str:
    """A run's status as the app shows it: a finished gate says its verdict."""
    return gate_status(run, findings) if finished_gate(run) else shown_status(run)


def shown_job_status(job: Job, run: Run | None, findings: Iterable[Mapping[str, Any]] = ()) -> str:
    """A job's status, told the same way as its run's: a gate that finds failures exits 1, so
    its job alone would read "failed" beside a completed run."""
    if finished_gate(run) and job.status in ("completed", "failed"):
        return gate_status(run, findings)
    return job.status


def job_error(job: Job, run: Run | None, log: str) -> str | None:
    """Why a job failed, to show before anything else: its log's error line, else its run's
    error, else its exit code; None when it did not fail (a gate's failed checks are a verdict)."""
    ended = job.status != "running"
    failed = job.status == "failed" or (ended and run is not None and shown_status(run) == "failed")
    if not failed or finished_gate(run):
        return None
    return (
        error_line(log)
        or (run.error if run is not None else None)
        or f"The job ended with exit code {job.exit_code} and no error message."
    )
