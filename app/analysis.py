"""Numbers the pages show, computed from the run store's rows and artefacts (no Streamlit here)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from training.runs import Run, RunStore
from training.trials import stages, trials


def search_progress(store: RunStore, run_id: str) -> dict[str, Any]:
    """Trials done / planned (from the stages table) and the stage being searched."""
    planned_stages = stages(store, run_id)
    done = trials(store, run_id)
    planned = sum(s["trials"] for s in planned_stages)
    current = max(
        (t["stage"] for t in done), default=planned_stages[0]["stage"] if planned_stages else 0
    )
    return {
        "done": len(done),
        "planned": planned,
        "stage": current,
        "stages": len(planned_stages),
        "failed": sum(t["status"] != "completed" for t in done),
    }


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


def trial_rows(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Flat rows for the trials table: id, stage, status, score, seconds, each hyperparameter."""
    rows = []
    for t in found:
        row = {
            "trial": t["trial_id"],
            "stage": t["stage"],
            "status": t["status"],
            "val_accuracy": t["score"],
            "seconds": round(t["seconds"] or 0.0, 2),
        }
        row.update(t["hyperparameters"])
        if t.get("error"):
            row["error"] = t["error"]
        rows.append(row)
    return rows


def safe_image(root: Path, rel: str) -> Path | None:
    """``root/rel`` if it is a file inside ``root`` (a stored rel cannot point elsewhere)."""
    try:
        path = (root / rel).resolve()
        path.relative_to(root.resolve())
    except (ValueError, OSError):
        return None
    return path if path.is_file() else None
