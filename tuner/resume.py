"""Resuming a killed search from Keras Tuner's files, including a damaged trial file.

Keras Tuner reloads a project from ``oracle.json`` and one ``trial_*/trial.json`` per trial, and
redoes the trial that was running when the process died. Keras Tuner rewrites those files in
place, so a kill in the middle of a write left an empty file; the search saves them with
:func:`save_state` instead. A trial file that no longer parses (a disk filled up, a half-copied
folder) would stop the reload with a JSON error; here it is rewritten as a trial to redo, with
the hyperparameters the run store recorded for it, and put on the oracle's retry queue, so every
other trial is kept.
"""

from __future__ import annotations

import json
from pathlib import Path

import keras_tuner as kt

from training.atomic import write_text


def save_state(state: dict, path: str | Path) -> None:
    """Write Keras Tuner state as JSON to a temporary sibling and rename it into place: a kill
    leaves the previous file or the new one, never half of one."""
    write_text(Path(path), json.dumps(state))


def _readable(path: Path) -> bool:
    try:
        state = json.loads(path.read_text())
        return isinstance(state, dict) and "trial_id" in state and "hyperparameters" in state
    except (OSError, ValueError):
        return False


def repair_trials(
    project_dir: Path, hyperparameters: kt.HyperParameters, recorded: dict[str, dict]
) -> list[str]:
    """Rewrite unreadable trial files as trials to redo; returns their ids.

    ``recorded`` maps a Keras Tuner trial id to the hyperparameter values the run store holds
    for it (the space's defaults are used for a trial the store never saw finish).
    """
    oracle_file = project_dir / "oracle.json"
    if not oracle_file.exists():
        return []
    repaired = []
    for trial_file in sorted(project_dir.glob("trial_*/trial.json")):
        if _readable(trial_file):
            continue
        trial_id = trial_file.parent.name.removeprefix("trial_")
        hp = hyperparameters.copy()
        values = {**hp.values, **recorded.get(trial_id, {})}
        hp.values = {k: v for k, v in values.items() if k in hp.values}
        trial = kt.engine.trial.Trial(hp, trial_id=trial_id, status="RUNNING")
        save_state(trial.get_state(), trial_file)
        repaired.append(trial_id)
    if repaired:
        state = json.loads(oracle_file.read_text())
        queue = state.setdefault("retry_queue", [])
        queue.extend(t for t in repaired if t not in queue)
        state["ongoing_trials"] = {
            tuner: t for tuner, t in state.get("ongoing_trials", {}).items() if t not in repaired
        }
        save_state(state, oracle_file)
    return repaired
