"""Keras' and Keras Tuner's private parts that Babysitter relies on, pinned (issue 23).

``tuner/kt_internals.py`` and ``training/fit/keras_internals.py`` are the only modules that touch
them; the tests here check each against the installed versions, so an upgrade that renames or
changes one fails here first, naming it. After them, the public hooks that replaced the rest:
a trial's failure and errors through ``run_trial``/``on_trial_end``, the oracle's lock over
``end_trial``, the reload through ``set_state``, and the oracle port restored after a stage.
"""

from __future__ import annotations

import inspect
import json
import os
import threading
from pathlib import Path
from typing import ClassVar

import keras
import keras_tuner as kt
import numpy as np
import pytest

from training.fit.keras_internals import start_fit_at
from training.store import RunStore
from training.store.trials import trials
from tuner import head_tuner, kt_internals
from tuner import search as search_module
from tuner.config import SearchConfig
from tuner.head_tuner import HeadTuner, TrialNotReported
from tuner.heads import HeadResult
from tuner.oracles import make_oracle

KT_ENV = ("KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT")


@pytest.fixture(autouse=True)
def not_distributed(monkeypatch):
    for name in KT_ENV:
        monkeypatch.delenv(name, raising=False)


def params(function) -> list[str]:
    return list(inspect.signature(function).parameters)


def space() -> kt.HyperParameters:
    hp = kt.HyperParameters()
    hp.Float("lr", 1e-4, 1e-2, sampling="log")
    return hp


def stage_tuner(folder: Path, trainers=None, store=None, run_id=None, trials=3) -> HeadTuner:
    oracle = make_oracle("random", space(), trials, 1, 0, store, run_id, stage=1)
    return HeadTuner(
        oracle,
        trainers or {},
        1,
        details_dir=folder / "stage_1",
        directory=str(folder),
        project_name="stage_1",
        overwrite=False,
    )


def finish(tuner: HeadTuner, trial, score: float = 0.5) -> None:
    """What a trial that completed does to the oracle."""
    tuner.oracle.update_trial(trial.trial_id, {"val_accuracy": score})
    trial.status = kt.engine.trial.TrialStatus.COMPLETED
    tuner.oracle.end_trial(trial)


# -- Keras Tuner: where a project's files are, and how they are written ------------------------


def test_keras_tuner_names_a_projects_files_as_kt_internals_says(tmp_path):
    tuner = stage_tuner(tmp_path)
    project = tmp_path / "stage_1"
    assert kt_internals.project_dir(tuner.oracle) == project
    assert kt_internals.tuner_file(tuner) == project / f"{tuner.tuner_id}.json"
    assert Path(tuner.oracle._get_oracle_fname()) == project / "oracle.json"
    assert Path(tuner.oracle._get_trial_dir("0")) == project / "trial_0"
    assert params(kt.Oracle._save_trial) == ["self", "trial"]
    assert params(kt.Oracle._get_trial_dir) == ["self", "trial_id"]
    assert params(kt.Oracle._get_oracle_fname) == ["self"]
    assert params(kt.engine.base_tuner.BaseTuner._get_tuner_fname) == ["self"]


def test_every_file_of_a_project_is_written_through_save_state(tmp_path, monkeypatch):
    """Keras Tuner's own writes (``Stateful.save``) never run: a renamed ``_save_trial`` or a
    new place that writes a trial file would fail here."""

    def in_place(self, fname):
        raise AssertionError(f"Keras Tuner wrote {fname} itself")

    written = []
    monkeypatch.setattr(kt.engine.trial.Trial, "save", in_place)
    monkeypatch.setattr(kt.Oracle, "save", in_place, raising=False)
    monkeypatch.setattr(kt_internals, "save_state", lambda s, p: written.append(Path(p).name))
    monkeypatch.setattr(head_tuner, "save_state", lambda s, p: written.append(Path(p).name))
    tuner = stage_tuner(tmp_path)
    tuner.on_search_begin()
    trial = tuner.oracle.create_trial(tuner.tuner_id)
    finish(tuner, trial)
    tuner.save()
    assert {"trial.json", "oracle.json", f"{tuner.tuner_id}.json"} == set(written)


def test_a_project_is_reloaded_when_its_tuner_file_exists(tmp_path):
    tuner = stage_tuner(tmp_path)
    tuner.on_search_begin()
    finish(tuner, tuner.oracle.create_trial(tuner.tuner_id))
    assert kt_internals.tuner_file(tuner).exists()
    assert list(stage_tuner(tmp_path).oracle.trials) == ["0"]
    kt_internals.tuner_file(tuner).unlink()
    assert stage_tuner(tmp_path).oracle.trials == {}


def test_a_workers_wait_on_the_chief_is_one_module_constant(monkeypatch):
    from keras_tuner.src.distribute import oracle_client

    monkeypatch.setattr(oracle_client, "TIMEOUT", oracle_client.TIMEOUT)
    kt_internals.set_rpc_timeout(7)
    assert oracle_client.TIMEOUT == 7
    source = inspect.getsource(oracle_client.OracleClient)
    assert source.count("self.stub.") == source.count("timeout=TIMEOUT") > 0


def test_an_oracles_state_holds_what_set_state_and_repair_trials_edit(tmp_path):
    """``RecordingMixin.set_state`` and ``tuner.resume.repair_trials`` edit ``oracle.json``'s
    ``retry_queue``, ``ongoing_trials`` and ``end_order``; ``reload`` reads the trial files
    before it sets that state, and the next trial is the last one queued."""
    tuner = stage_tuner(tmp_path)
    tuner.on_search_begin()
    first, second = (tuner.oracle.create_trial(name) for name in ("a", "b"))
    finish(tuner, first)
    state = json.loads((tmp_path / "stage_1" / "oracle.json").read_text())
    # Written before the ended trial leaves ongoing_trials: the trial files decide on reload.
    assert state["ongoing_trials"] == {"a": first.trial_id, "b": second.trial_id}
    assert state["end_order"] == [first.trial_id] and state["retry_queue"] == []
    resumed = stage_tuner(tmp_path)
    assert resumed.oracle.create_trial("c").trial_id == second.trial_id
    assert resumed.oracle.create_trial("d").trial_id == "2"


# -- Keras: where a fit starts ------------------------------------------------------------------


class Epochs(keras.callbacks.Callback):
    def __init__(self, start: int | None = None):
        super().__init__()
        self.start, self.seen = start, []

    def on_train_begin(self, logs=None):
        if self.start is not None:
            start_fit_at(self.model, self.start)

    def on_epoch_begin(self, epoch, logs=None):
        self.seen.append(epoch + 1)

    def on_train_end(self, logs=None):
        if self.start is not None:
            start_fit_at(self.model, None)


@pytest.mark.core
def test_a_fit_starts_at_the_epoch_set_in_on_train_begin():
    """Each backend's trainer reads the model's ``_initial_epoch`` after ``on_train_begin``."""
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile("sgd", "mse")
    assert model._initial_epoch is None
    x, y = np.zeros((4, 3)), np.zeros((4, 2))
    resumed, later = Epochs(start=2), Epochs()
    model.fit(x, y, epochs=4, callbacks=[resumed], verbose=0)
    model.fit(x, y, epochs=2, callbacks=[later], verbose=0)
    assert (resumed.seen, later.seen) == ([3, 4], [1, 2])


# -- The public hooks: a trial's failure, an error, the oracle's lock, the port ---------------


class Heads:
    """A head trainer that plays back results: "explode", "fine", or an error to raise."""

    seed = 0

    def __init__(self, *plays):
        self.plays = list(plays)

    def train(self, hp, epochs, seed=None):
        play = self.plays.pop(0)
        if isinstance(play, Exception):
            raise play
        history = [{"epoch": 1, "loss": 0.5, "accuracy": 0.5, "val_accuracy": 0.5}]
        if play == "fine":
            return HeadResult(history, val_accuracy=0.5, val_loss=0.7, seconds=0.1)
        exploded = {"epoch": 1, "loss": 1e9, "learning_rate": 5.0}
        return HeadResult(history, val_accuracy=0.5, val_loss=0.7, exploded=exploded)


class Boom(Exception):
    pass


@pytest.fixture
def store(babysitter_home):
    return RunStore(babysitter_home)


def test_an_exploding_trial_fails_with_its_reason_and_no_traceback(tmp_path, store, capfd):
    run = store.create_run("search", "x", {}, "fp", "data")
    tuner = stage_tuner(tmp_path, {"head": Heads("explode", "fine")}, store, run.id, trials=2)
    tuner.search(verbose=0)
    assert "Traceback" not in "".join(capfd.readouterr())
    rows = {r["trial_id"]: r for r in trials(store, run.id)}
    assert rows["s1-0"]["status"] == "failed" and rows["s1-0"]["score"] is None
    assert rows["s1-0"]["error"] == "loss exploded to 1e+09 at epoch 1 (learning rate 5)"
    assert (rows["s1-1"]["status"], rows["s1-1"]["score"]) == ("completed", 0.5)
    failed = tuner.oracle.trials["0"]
    assert (str(failed.status), failed.message) == ("FAILED", rows["s1-0"]["error"])


def test_any_other_error_stops_the_search_as_itself_and_the_trial_is_redone(tmp_path, store, capfd):
    run = store.create_run("search", "x", {}, "fp", "data")
    error = Boom("the disk is on fire")
    tuner = stage_tuner(tmp_path, {"head": Heads(error)}, store, run.id)
    with pytest.raises(Boom) as raised:
        tuner.search(verbose=0)
    assert raised.value is error
    assert "Traceback" not in "".join(capfd.readouterr())  # Keras Tuner printed nothing
    assert trials(store, run.id) == []
    resumed = stage_tuner(tmp_path, {"head": Heads("fine")}, store, run.id)
    assert resumed.oracle.create_trial(resumed.tuner_id).trial_id == "0"


def test_a_result_that_does_not_reach_the_oracle_leaves_the_trial_to_redo(
    tmp_path, store, monkeypatch
):
    run = store.create_run("search", "x", {}, "fp", "data")
    tuner = stage_tuner(tmp_path, {"head": Heads("fine")}, store, run.id)

    def lost(*args, **kwargs):
        raise OSError("the chief went away")

    monkeypatch.setattr(tuner.oracle, "update_trial", lost)
    with pytest.raises(TrialNotReported, match=r"Trial 0's result did not reach .* went away"):
        tuner.search(verbose=0)
    assert trials(store, run.id) == []
    resumed = stage_tuner(tmp_path, store=store, run_id=run.id)
    assert resumed.oracle.create_trial(resumed.tuner_id).trial_id == "0"


def test_end_trial_holds_the_oracles_lock_while_it_records(tmp_path, store, monkeypatch):
    """A chief's gRPC threads call the oracle at once: no request runs while a trial ends."""
    run = store.create_run("search", "x", {}, "fp", "data")
    tuner = stage_tuner(tmp_path, store=store, run_id=run.id)
    oracle = tuner.oracle
    trial = oracle.create_trial("a")
    oracle.update_trial(trial.trial_id, {"val_accuracy": 0.5})
    trial.status = kt.engine.trial.TrialStatus.COMPLETED
    recording, release = threading.Event(), threading.Event()
    record = oracle._record

    def slow_record(reported):
        recording.set()
        release.wait(10)
        record(reported)

    monkeypatch.setattr(oracle, "_record", slow_record)
    ending = threading.Thread(target=oracle.end_trial, args=(trial,))
    ending.start()
    assert recording.wait(10)
    created = []
    other = threading.Thread(target=lambda: created.append(oracle.create_trial("b")))
    other.start()
    other.join(0.5)
    assert other.is_alive()  # waits for the lock
    release.set()
    ending.join(10)
    other.join(10)
    assert [t.trial_id for t in created] == ["1"]
    assert [t["trial_id"] for t in trials(store, run.id)] == ["s1-0"]


class StageTwoFails:
    """Stands for ``HeadTuner``: stage 1 runs no trial, stage 2 fails."""

    ports: ClassVar[list[str | None]] = []

    def __init__(self, oracle, trainers, epochs, details_dir, **kwargs):
        self.oracle = oracle
        self.ports.append(os.environ.get("KERASTUNER_ORACLE_PORT"))
        if len(self.ports) == 2:
            raise Boom("stage 2")

    def search(self, **kwargs):
        pass


def test_a_failed_stage_gives_the_oracle_port_back(tmp_path, store, monkeypatch):
    monkeypatch.setenv("KERASTUNER_ORACLE_PORT", "9000")
    monkeypatch.setattr(search_module, "HeadTuner", StageTwoFails)
    monkeypatch.setattr(StageTwoFails, "ports", [])
    config = SearchConfig(data=str(tmp_path), backbones=["VGG16"], trials=4, stages=2)
    run = store.create_run("search", "VGG16", {}, "fp", "data")
    with pytest.raises(Boom):
        search_module._run_stages(config, {}, store, run.id, lambda m: None, "chief")
    assert StageTwoFails.ports == ["9000", "9001"]
    assert os.environ["KERASTUNER_ORACLE_PORT"] == "9000"


def test_the_model_layers_private_keras_reads_still_resolve():
    """Keras' refused-functions list and its layer-group naming, read in one module: a Keras
    release that moves either fails here first (the callers have fallbacks)."""
    from training.model import keras_internals

    refused = keras_internals.non_modeling_apis()
    assert refused is not None and "get_file" in refused
    snake = keras_internals.snake_case()
    assert snake is not None and snake("Conv2D") == "conv2d"
