"""The staged search end to end on tiny real files: stages, trials, failures, fine-tune, resume."""

from __future__ import annotations

import subprocess

import pytest

from tests.cli_process import ROOT, cli_env, run_cli
from tests.imagegen import make_image_folder
from training.errors import ConfigError
from training.predict import load_model_file, predict_files
from training.store import RunStore
from training.store.trials import stages, trials
from tuner.config import SearchConfig
from tuner.search import search


@pytest.fixture
def colours(tmp_path):
    return make_image_folder(tmp_path / "colours", {"red": 14, "green": 14, "blue": 14}, size=32)


def tiny(data, **overrides) -> SearchConfig:
    values = dict(
        data=str(data),
        backbones=["VGG16"],
        weights="none",
        image_size=32,
        batch_size=8,
        trials=6,
        stages=2,
        epochs_head=4,
        epochs_finetune=1,
        top_k=1,
        seed=0,
    )
    values.update(overrides)
    return SearchConfig(**values)


@pytest.mark.core
def test_a_two_stage_search_records_every_trial_and_saves_the_best_model(colours):
    result = search(tiny(colours), verbose=0, echo=lambda m: None)
    store = RunStore()
    run = store.get_run(result.run_id)
    assert (run.kind, run.status) == ("search", "completed")
    rows = trials(store, run.id)
    assert len(rows) == 6
    assert [r["stage"] for r in rows].count(1) >= 3 and {r["stage"] for r in rows} == {1, 2}
    assert len({r["trial_id"] for r in rows}) == 6
    for row in rows:
        assert set(row["hyperparameters"]) >= {"lr", "l2", "dropout", "optimizer"}
        if row["status"] == "completed":
            assert len(row["history"]) == 4 and row["seconds"] > 0
    recorded = stages(store, run.id)
    assert [s["stage"] for s in recorded] == [1, 2]
    lr1, lr2 = (s["space"]["lr"] for s in recorded)
    assert (lr1["low"], lr1["high"]) != (lr2["low"], lr2["high"])  # stage 2 moved the range
    checks = {f["check"] for f in result.findings}
    assert "edge_of_range" in checks
    assert "generalization_gap" in checks  # the best fine-tune's diagnoses come along
    model = load_model_file(store.artifact(run.id, "model"))
    image = next((colours / "red").iterdir())
    assert predict_files(model, [image])[0]["predictions"][0]["class"] in {"red", "green", "blue"}
    assert result.summary["best_run"] in {r.id for r in store.list_runs(kind="train")}


def test_exploding_trials_are_recorded_as_failed_and_the_search_goes_on(colours):
    config = tiny(colours, trials=5, stages=1, space=["lr=1e-3:1e4", "optimizer=sgd"])
    result = search(config, verbose=0, echo=lambda m: None)
    rows = trials(RunStore(), result.run_id)
    failed = [r for r in rows if r["status"] == "failed"]
    assert failed, [r["hyperparameters"]["lr"] for r in rows]
    assert all("exploded" in r["error"] for r in failed)
    high = [r for r in rows if r["hyperparameters"]["lr"] > 1]
    assert all(r["status"] == "failed" for r in high)  # every rate over 1 explodes
    assert len(rows) == 5


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"trials": 0}, "--trials"),
        ({"backbones": ["NoSuchNet"]}, "NoSuchNet"),
        ({"stages": 3, "trials": 2}, "--stages"),
        ({"tuner": "grid"}, "--tuner"),
    ],
)
def test_bad_search_arguments_are_refused_with_the_flag_named(colours, overrides, message):
    with pytest.raises(ConfigError, match=message):
        tiny(colours, **overrides)


def test_an_inverted_range_is_refused(colours):
    with pytest.raises(ConfigError, match="lr"):
        search(tiny(colours, space=["lr=1e-2:1e-4"]), verbose=0, echo=lambda m: None)


def test_resume_with_different_arguments_names_the_difference(colours, babysitter_home):
    store = RunStore()
    config = tiny(colours)
    from tuner.search import _open_run, _prepare

    data = _prepare(config, store, 0)
    run = _open_run(config, data, store, resume=False, echo=lambda m: None)
    store.set_status(run.id, "interrupted")
    with pytest.raises(ConfigError, match="trials: 6 → 8"):
        _open_run(tiny(colours, trials=8), data, store, resume=True, echo=lambda m: None)


def _search_args(data):
    return [
        "search",
        str(data),
        "--backbone",
        "VGG16",
        "--weights",
        "none",
        "--image-size",
        "32",
        "--batch-size",
        "8",
        "--trials",
        "8",
        "--stages",
        "2",
        "--epochs-head",
        "60",
        "--epochs-finetune",
        "0",
        "--top-k",
        "1",
    ]


def _tuner_cli(*args):
    import sys

    return [sys.executable, "-m", "tuner", *args]


def test_search_cli_reports_bad_input_without_a_traceback(colours, babysitter_home):
    done = subprocess.run(
        _tuner_cli("search", str(colours), "--backbone", "VGG16", "--trials", "0"),
        env=cli_env(babysitter_home),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "--trials" in errors[0]
    assert "Traceback" not in done.stderr
    assert run_cli("runs", "list", home=babysitter_home).returncode == 0


def test_trials_are_logged_for_tensorboard_hparams(colours):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result = search(tiny(colours, trials=2, stages=1), verbose=0, echo=lambda m: None)
    logdir = RunStore().artifact(result.run_id, "tensorboard") / "hparams"
    sessions = sorted(p.name for p in logdir.iterdir())
    assert sessions == ["s1-0", "s1-1"]
    events = EventAccumulator(str(logdir / "s1-0")).Reload()
    assert "val_accuracy" in events.Tags()["scalars"]
    assert len(events.Scalars("val_accuracy")) == 4  # one per head epoch
