"""A stage's trials as one program: the same results as one at a time, the same records, and a
kill mid-stage keeps what ended and redoes the rest."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import keras_tuner as kt
import numpy as np
import pytest

from tests.imagegen import make_image_folder
from tests.test_kill_anywhere import _finish, _kill_when
from training.store import RunStore
from training.store.trials import trials
from tuner.batched_stage import BatchedHeadTuner, proposals_without_results, serial_reason
from tuner.config import SearchConfig
from tuner.counter_random import step_key, uniform
from tuner.head_tuner import HeadTuner
from tuner.heads import HeadHyperparameters, HeadTrainer
from tuner.oracles import make_oracle
from tuner.population import HeadJob, PopulationTrainer, population_of
from tuner.population_plan import choose, groupings, pack, width_bucket
from tuner.search import _tuner_class
from tuner.space import Range, default_space

STAGE_TRIALS = 6
EPOCHS = 3
ORACLE_SEED = 3  # draws a mix: both optimizers' kinds, both buckets, exploded and finished heads


def features(n: int, seed: int, dim: int = 24, classes: int = 3):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    x = rng.normal(0, 1, (n, dim)) + 2 * np.eye(classes, dim)[y]
    return x.astype("float32"), y


def make_trainer(class_weights=None) -> HeadTrainer:
    x, y = features(100, 0)  # 100 rows in batches of 16: the last batch holds 4
    vx, vy = features(40, 1)
    return HeadTrainer(x, y, vx, vy, num_classes=3, batch_size=16, class_weights=class_weights)


@pytest.fixture(scope="module")
def trainer() -> HeadTrainer:
    """One trainer for the module: its compiled models and programs serve every test."""
    return make_trainer()


def stage_space() -> kt.HyperParameters:
    space = default_space(["b"], phase2=False)
    space["lr"] = Range("lr", "float", low=1e-3, high=300.0, log=True)
    space["head_units"] = Range("head_units", "choice", choices=[0, 8, 16])
    hp = kt.HyperParameters()
    space.register(hp)
    return hp


def open_stage(tuner_class, folder: Path, store: RunStore, run_id: str, trainer: HeadTrainer):
    """Stage 1 as ``_run_stages`` opens it: reloaded from its files when they exist."""
    oracle = make_oracle(
        "random", stage_space(), STAGE_TRIALS, EPOCHS, ORACLE_SEED, store, run_id, stage=1
    )
    return tuner_class(
        oracle,
        {"b": trainer},
        EPOCHS,
        details_dir=folder / "stage_1",
        directory=str(folder),
        project_name="stage_1",
        overwrite=False,
    )


def run_stage(tuner_class, folder: Path, store: RunStore, trainer: HeadTrainer):
    run = store.create_run("search", "b", {}, folder.name, "data")
    open_stage(tuner_class, folder, store, run.id, trainer).search(verbose=0)
    return run.id, {row["trial_id"]: row for row in trials(store, run.id)}


def assert_same_trial(alone: dict, batched: dict) -> None:
    assert batched["hyperparameters"] == alone["hyperparameters"]
    assert (batched["status"], len(batched["history"])) == (alone["status"], len(alone["history"]))
    for mine, theirs in zip(batched["history"], alone["history"], strict=True):
        assert mine.keys() == theirs.keys()
        for key, value in theirs.items():
            assert mine[key] == pytest.approx(value, rel=2e-3, abs=2e-4), (key, mine, theirs)
    if alone["score"] is None:
        assert batched["score"] is None
    else:
        assert batched["score"] == pytest.approx(alone["score"], abs=1e-6)
    if alone["error"]:
        shape = r"loss exploded to (\S+) at epoch (\d+) \(learning rate (\S+)\)"
        (loss_a, epoch_a, lr_a), (loss_b, epoch_b, lr_b) = (
            re.fullmatch(shape, row["error"]).groups() for row in (alone, batched)
        )
        assert (epoch_b, lr_b) == (epoch_a, lr_a)
        assert float(loss_b) == pytest.approx(float(loss_a), rel=1e-2)
    else:
        assert batched["error"] is None


@pytest.mark.core
def test_a_stage_run_batched_gives_every_trial_the_result_it_gets_alone(tmp_path, trainer):
    store = RunStore()
    _, alone = run_stage(HeadTuner, tmp_path / "serial", store, trainer)
    compiled = population_of(trainer).compiled_programs
    _, batched = run_stage(BatchedHeadTuner, tmp_path / "batched", store, trainer)
    assert sorted(batched) == sorted(alone) and len(alone) == STAGE_TRIALS
    statuses = {row["status"] for row in alone.values()}
    assert statuses == {"completed", "failed"}, "the draw must hold finished and exploded heads"
    values = [row["hyperparameters"] for row in alone.values()]
    assert {width_bucket(v["head_units"]) for v in values} == {0, 16}
    assert {v["optimizer"] for v in values} == {"adam", "adamw", "sgd"}
    for trial_id, row in alone.items():
        assert_same_trial(row, batched[trial_id])
    exploded = [r for r in alone.values() if r["status"] == "failed"]
    assert all(len(r["history"]) < EPOCHS for r in exploded)  # stopped where it exploded
    assert population_of(trainer).compiled_programs <= compiled + 1  # the stage: one program


class Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs."""


@pytest.mark.core
def test_a_stage_killed_mid_batch_keeps_the_ended_trials_and_redoes_the_rest(
    tmp_path, monkeypatch, trainer
):
    store = RunStore()
    _, uninterrupted = run_stage(BatchedHeadTuner, tmp_path / "whole", store, trainer)
    run = store.create_run("search", "b", {}, "killed", "data")
    folder = tmp_path / "killed"
    ended_before_kill = 2
    ender = BatchedHeadTuner._ender

    def dies_after_two(self, batch, backbone):
        end = ender(self, batch, backbone)

        def end_or_die(index, result):
            if len(trials(store, run.id)) == ended_before_kill:
                raise Killed
            end(index, result)

        return end_or_die

    monkeypatch.setattr(BatchedHeadTuner, "_ender", dies_after_two)
    with pytest.raises(Killed):
        open_stage(BatchedHeadTuner, folder, store, run.id, trainer).search(verbose=0)
    kept = {row["trial_id"]: row for row in trials(store, run.id)}
    assert len(kept) == ended_before_kill
    monkeypatch.setattr(BatchedHeadTuner, "_ender", ender)

    resumed = open_stage(BatchedHeadTuner, folder, store, run.id, trainer)
    assert len(resumed.oracle.trials) == STAGE_TRIALS  # every trial was created before the kill
    resumed.search(verbose=0)
    rows = trials(store, run.id)
    assert sorted(r["trial_id"] for r in rows) == sorted(uninterrupted)  # each trial once
    for row in rows:
        if row["trial_id"] in kept:
            assert row == kept[row["trial_id"]]  # ended before the kill: kept as it was
        assert_same_trial(uninterrupted[row["trial_id"]], row)  # redone: the same result
    assert all(str(t.status) in ("COMPLETED", "FAILED") for t in resumed.oracle.trials.values())


@pytest.mark.slow
def test_a_search_killed_while_a_population_trains_resumes_with_every_trial_once(
    tmp_path, babysitter_home
):
    """SIGKILL while stage 1's trials train together (created, none ended: the window is the
    program's compilation and epochs), then ``--resume``: every planned trial once."""
    data = make_image_folder(tmp_path / "c", {"red": 6, "green": 6, "blue": 6}, size=32)
    plan = [3, 2]
    command = [
        sys.executable, "-m", "tuner", "search", str(data), "--backbone", "VGG16",
        "--weights", "none", "--image-size", "32", "--batch-size", "8", "--trials", "5",
        "--stages", "2", "--epochs-head", "3", "--epochs-finetune", "0", "--top-k", "0",
        "--resume",
    ]  # fmt: skip
    store = RunStore(babysitter_home)

    def training_stage_1() -> bool:
        runs = store.list_runs(kind="search")
        folder = store.run_dir(runs[0].id) / "tuner" / "stage_1" if runs else None
        files = sorted(folder.glob("trial_*/trial.json")) if folder else []
        texts = [f.read_text() for f in files]
        return len(texts) == plan[0] and not any('"COMPLETED"' in t for t in texts)

    _kill_when(command, babysitter_home, tmp_path / "killed.log", training_stage_1, "stage 1")
    (run,) = store.list_runs(kind="search")
    assert trials(store, run.id) == []  # killed before any trial ended
    done = _finish(command, babysitter_home)
    assert f"Resuming search {run.id}" in done.stdout
    rows = trials(store, run.id)
    assert sorted(r["trial_id"] for r in rows) == sorted({r["trial_id"] for r in rows})
    assert [sum(r["stage"] == s for r in rows) for s in (1, 2)] == plan
    assert store.get_run(run.id).status == "completed"


@pytest.mark.core
def test_class_weights_and_the_last_short_batch_train_the_same_alone_and_stacked():
    weights = np.array([0.5, 1.0, 2.5], "float32")
    trainer = make_trainer(class_weights=weights)
    jobs = [
        HeadJob(HeadHyperparameters(lr=3e-2, dropout=0.3, optimizer="adamw", l2=1e-3), 3, 11),
        HeadJob(HeadHyperparameters(lr=1e-1, head_units=12, optimizer="sgd"), 2, 12),
        HeadJob(HeadHyperparameters(lr=1e-2, head_units=16, label_smoothing=0.2), 3, 13),
    ]
    stacked = PopulationTrainer(trainer).train(jobs)
    for job, result in zip(jobs, stacked, strict=True):
        alone = trainer.train(job.hp, job.epochs, seed=job.seed)
        assert len(result.history) == job.epochs == len(alone.history)
        for mine, theirs in zip(result.history, alone.history, strict=True):
            for key, value in theirs.items():
                assert mine[key] == pytest.approx(value, rel=2e-3, abs=2e-4), key


@pytest.mark.core
def test_a_heads_dropout_mask_is_the_same_alone_and_stacked_and_keeps_its_share():
    seeds = np.array([7, 8, 9], "int32")
    stacked = np.asarray(uniform(step_key(seeds, 5), 6, 10))
    alone = np.asarray(uniform(step_key(8, 5), 6, 10))
    np.testing.assert_array_equal(stacked[1], alone)
    assert not np.array_equal(stacked[0], stacked[1])
    assert not np.array_equal(alone, np.asarray(uniform(step_key(8, 6), 6, 10)))
    noise = np.asarray(uniform(step_key(3, 0), 256, 512))
    assert noise.min() >= 0.0 and noise.max() < 1.0
    assert (noise >= 0.3).mean() == pytest.approx(0.7, abs=0.005)


def test_width_buckets_double_at_most():
    widths = (0, 1, 16, 17, 128, 200, 512)
    assert [width_bucket(u) for u in widths] == [0, 16, 16, 32, 128, 256, 512]
    with pytest.raises(ValueError, match="head_units <= 512"):
        width_bucket(513)


def test_heads_pack_into_the_narrowest_section_that_holds_them():
    layout = ((0, 1), (128, 2), (512, 1))
    rounds = pack(layout, [128, 0, 128, 128, 512])
    assert rounds == [[[1], [0, 2], [4]], [[], [3], []]]  # the third 128: a second round
    assert pack(((128, 4),), [0]) is None  # no hidden layer fits only a section without one
    assert pack(((128, 4),), [256]) is None


def test_a_batch_takes_the_layout_that_costs_least_compile_and_epochs_together():
    buckets = [256, 128, 128]
    compiled = [((128, 2), (512, 2))]

    def limit(width):
        return 64

    def epoch_s(layout):  # the hidden layers' work
        return 0.01 * sum(w * n for w, n in layout) / 512

    assert groupings(buckets, limit) == [((256, 3),), ((128, 2), (256, 1))]
    assert len(groupings([0, 16, 128, 256, 512], limit)) == 8
    reused = choose(buckets, compiled, limit, 3, epoch_s, per_section_s=2.0)
    assert reused == (((128, 2), (512, 2)), [[[1, 2], [0]]])  # compiling costs more
    exact = choose(buckets, compiled, limit, 3, epoch_s, per_section_s=0.001)
    assert exact[0] == ((128, 2), (256, 1))  # compiling is cheap: the least work
    merged = choose(buckets, [], limit, 3, epoch_s, per_section_s=2.0)
    assert merged[0] == ((256, 3),)  # one section less to compile than it costs to compute


def test_bayesian_batches_stop_where_it_starts_to_use_results():
    hp = stage_space()
    oracle = make_oracle("bayesian", hp, 40, EPOCHS, 0)
    assert proposals_without_results(oracle) == 3 * len(hp.space)
    assert proposals_without_results(make_oracle("random", hp, 40, EPOCHS, 0)) is None


def test_a_bayesian_batch_draws_the_trials_it_would_draw_one_at_a_time(tmp_path):
    """Keras Tuner's Bayesian oracle proposes at random until it has ``num_initial_points``
    completed trials (3 × the dimensions by default): a batch that stops there gets the very
    trials a serial search gets."""

    def finish(oracle, trial):
        oracle.update_trial(trial.trial_id, {"val_accuracy": 0.5})
        trial.status = kt.engine.trial.TrialStatus.COMPLETED
        oracle.end_trial(trial)

    def oracle(name: str):  # a tuner gives its oracle a project folder
        made = make_oracle("bayesian", stage_space(), 40, EPOCHS, 1)
        HeadTuner(made, {}, EPOCHS, tmp_path / name, directory=str(tmp_path), project_name=name)
        return made

    batched, serial = oracle("batched"), oracle("serial")
    count = proposals_without_results(batched)
    together = [batched.create_trial(f"t-{i}") for i in range(count)]
    alone = []
    for _ in range(count):
        alone.append(serial.create_trial("t"))
        finish(serial, alone[-1])
    assert [t.hyperparameters.values for t in together] == [t.hyperparameters.values for t in alone]
    for trial in together:
        finish(batched, trial)
    assert proposals_without_results(batched) == 1  # from here on, one result at a time


@pytest.mark.parametrize(
    ("tuner", "role", "why"),
    [("hyperband", None, "Hyperband promotes"), ("random", "worker", "distributed")],
)
def test_what_cannot_batch_runs_serially_and_says_why(tuner, role, why):
    assert why in serial_reason(tuner, role)
    config = SearchConfig(data="d", backbones=["VGG16"], tuner=tuner)
    chosen, message = _tuner_class(config, role)
    assert chosen is HeadTuner and why in message and "--trial-execution serial" in message
    assert _tuner_class(SearchConfig(data="d", backbones=["VGG16"]), None) == (
        BatchedHeadTuner,
        None,
    )
    serial = SearchConfig(data="d", backbones=["VGG16"], trial_execution="serial")
    assert _tuner_class(serial, None) == (HeadTuner, None)


def test_a_batched_search_resumes_as_serial_and_back():
    """Batched and serial compute the same trials: switching does not change the fingerprint."""
    a = SearchConfig(data="d", backbones=["VGG16"])
    b = SearchConfig(data="d", backbones=["VGG16"], trial_execution="serial")
    assert a.fingerprint("key") == b.fingerprint("key") and not a.differences(b.to_dict())


def test_the_cli_names_the_flag_and_its_fallbacks(capsys):
    from tuner.cli import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["search", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--trial-execution {batched,serial}" in text
    assert "--tuner hyperband" in text and "--distributed" in text
