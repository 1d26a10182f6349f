"""The web app closes the loop: Monitor's totals right from the first draw, a resumed job shown
while it starts, no "in progress" after a stop, and an estimate that counts the machine's load."""

from __future__ import annotations

import pytest

from app import analysis, estimate
from tests.apptest import follow_run, page
from tests.test_app_monitor import epochs, fake_job, progress, search_run, texts, train_run
from training import jobs
from training.model.backbones import get_backbone
from training.store import RunStore
from training.store.trials import record_stage
from tuner.config import SearchConfig

SPACE = {"lr": {"kind": "float", "low": 1e-5, "high": 1e-1, "log": True}}


@pytest.fixture
def store(babysitter_home) -> RunStore:
    (babysitter_home.parent / "data").mkdir()
    return RunStore(babysitter_home)


def two_stage_search(store: RunStore):
    """A search of 6 trials over 2 stages that has recorded nothing yet (its first seconds)."""
    data = str(store.home.parent / "data")
    config = SearchConfig(data=data, backbones=["VGG16"], trials=6, stages=2, top_k=1)
    return store.create_run("search", "VGG16", config.to_dict(), "fp", data)


# -- totals from the search's plan ----------------------------------------------------------------


def test_search_progress_plans_from_the_config_until_the_stages_table_says_otherwise(store):
    run = two_stage_search(store)
    fresh = analysis.search_progress(store, run.id)
    assert (fresh["done"], fresh["planned"], fresh["stage"], fresh["stages"]) == (0, 6, 1, 2)
    record_stage(store, run.id, 1, SPACE, 4)  # the plan's own count: nothing changes
    assert analysis.search_progress(store, run.id)["planned"] == 6
    record_stage(store, run.id, 2, SPACE, 3)  # a stage that opened with more trials wins
    opened = analysis.search_progress(store, run.id)
    assert (opened["planned"], opened["stage"], opened["stages"]) == (7, 2, 2)


def test_monitor_shows_the_whole_plan_before_any_stage_starts(store):
    run = two_stage_search(store)
    shown = progress(follow_run(run.id))
    assert any(t.startswith("Head search: trials 0 / 6 · stage 1 of 2") for t in shown), shown


# -- a resumed job while it starts ----------------------------------------------------------------


def test_a_resumed_job_shows_the_run_it_resumes_while_it_starts(store, monkeypatch):
    """Resume starts the job's command again; until that command links its run, Monitor says
    which job and run it resumes and shows that run (the command here only sleeps)."""
    cut = train_run(store, "interrupted")
    epochs(store, cut.id, {"head": 2})
    args = ["training", "train", cut.config["data"], "--backbone", "VGG16"]
    earlier = fake_job(store, args, "cancelled", cut.id, code=None)
    monkeypatch.setattr(jobs, "_BOOT", "import time; time.sleep(120)")
    new = jobs.resume(store, earlier)
    try:
        assert jobs.resumed_from(new) == {"job": earlier, "run": cut.id}
        assert jobs.resumed_from(jobs.get_job(store, earlier)) is None
        at = page("monitor", job_id=new.id)
        shown = texts(at)
        assert f"Resuming job {earlier} (run {cut.id}) …" in shown
        assert f"{cut.id} · train · interrupted" in shown and "has not created a run" not in shown
        assert any(t.startswith("Epochs 2 / 8") for t in progress(at)), progress(at)
    finally:
        jobs.cancel(store, new.id, grace_s=5)


# -- no "in progress" after a stop ----------------------------------------------------------------


def test_a_cancelled_search_never_calls_its_fine_tune_in_progress(store):
    search = search_run(store)
    child = train_run(store, "interrupted")
    epochs(store, child.id, {"head": 5, "finetune": 1})
    finetuning = {"event": "finetuning", "trial_id": "s1-03", "rank": 1, "of": 2}
    store.append_event(search.id, finetuning)
    store.append_event(search.id, {**finetuning, "event": "finetune_run", "run": child.id})
    store.set_status(search.id, "interrupted", error="job 1 ended (cancelled)")
    at = follow_run(search.id)
    shown = texts(at)
    assert f"Curves of the interrupted fine-tune: run {child.id}" in shown
    assert "in progress" not in shown
    bars = [t for t in progress(at) if t.startswith("Fine-tunes")]
    assert bars == [
        "Fine-tunes 0 / 2 done · #1 (trial s1-03): epoch 6 / 8, fine-tune · interrupted"
    ]


# -- the estimate under load ----------------------------------------------------------------------


def loaded(average: float, cores: int = 4) -> estimate.Estimate:
    rates = {"VGG16": estimate.guessed_rates(get_backbone("VGG16"), 64)}
    config = SearchConfig(data="/d", backbones=["VGG16"], image_size=64)
    return estimate.estimate(config, 500, rates, 20.0, 0.3, estimate.Load(average, cores))


def test_other_work_on_the_cores_lengthens_the_estimate_at_least_in_proportion():
    idle, busy, half = loaded(0.0), loaded(8.0), loaded(2.0)
    # Twice the cores' worth of other work: the job gets a third of the machine, not all of it.
    assert busy.low >= 3 * idle.low * (1 - 1e-9) and busy.high >= 3 * idle.high * (1 - 1e-9)
    assert idle.high < half.high < busy.high
    assert "load: 0.0 on 4 cores" in idle.basis and "about 100%" in idle.basis
    assert "load: 8.0 on 4 cores" in busy.basis and "about 33%" in busy.basis


def test_the_launch_page_estimate_reads_this_machines_load(monkeypatch):
    """Launch passes no load: the estimate reads the machine's (here a stand-in)."""
    samples = iter([(100.0, 400.0), (175.0, 500.0)])  # 75% of the CPU time busy meanwhile
    monkeypatch.setattr(estimate, "_cpu_times", lambda: next(samples))
    monkeypatch.setattr(estimate.os, "cpu_count", lambda: 2)
    rates = {"VGG16": estimate.guessed_rates(get_backbone("VGG16"), 64)}
    config = SearchConfig(data="/d", backbones=["VGG16"], image_size=64)
    guess = estimate.estimate(config, 500, rates, 20.0, 0.3)
    assert "load: 1.5 on 2 cores" in guess.basis and "about 57%" in guess.basis
    assert guess.high == pytest.approx(loaded(1.5, 2).high)


def test_the_load_is_the_cpu_time_used_now_not_a_lingering_average(monkeypatch):
    """The 1-minute average still counts a job that just ended; the CPU sample does not."""
    samples = iter([(100.0, 400.0), (100.0, 500.0)])  # idle over the sample
    monkeypatch.setattr(estimate, "_cpu_times", lambda: next(samples))
    monkeypatch.setattr(estimate.os, "getloadavg", lambda: (2.3, 1.0, 0.5))
    assert estimate.machine_load(sample_s=0).average == 0.0
    monkeypatch.setattr(estimate, "_cpu_times", lambda: None)  # no /proc/stat: the average
    assert estimate.machine_load(sample_s=0).average == 2.3


def test_rates_measured_beside_other_work_are_made_an_idle_machines():
    """A run that shared 2 cores with 2 cores' worth of other work ran at half speed: its
    seconds count half as an idle machine's."""
    assert estimate.idle_share({"machine": {"others": 2.0, "cores": 2}}) == 0.5
    assert estimate.idle_share({"machine": None}) == 1.0  # not recorded: taken as it is
    assert estimate.idle_share({"machine": {"others": "x", "cores": 2}}) == 1.0


def test_a_run_records_the_other_work_it_ran_beside(monkeypatch):
    from training import contention

    busy = iter([100.0, 160.0])  # the machine's busy CPU seconds at start and end
    clock = iter([0.0, 20.0])
    monkeypatch.setattr(contention, "_busy_seconds", lambda: next(busy))
    monkeypatch.setattr(contention.time, "monotonic", lambda: next(clock))
    monkeypatch.setattr(contention.os, "cpu_count", lambda: 4)
    start = contention.snapshot()
    monkeypatch.setattr(
        contention, "snapshot", lambda: contention.Snapshot(20.0, 160.0, start.own + 20.0)
    )
    # 60 busy CPU seconds in 20 s, 20 of them this process's: 2 cores' worth of other work.
    assert contention.others_since(start) == {"others": 2.0, "cores": 4}
