"""Monitor, Runs, Results and Command center on stores filled by hand (no training).

Failures come first (a job's error line, Resume only with a run to resume), a search is followed
through its top-K fine-tunes, a gate's job and run tell one story, and advice speaks the app's
words with hyperparameters to 3 significant digits and one percent format.
"""

from __future__ import annotations

import json

import pytest
from streamlit.testing.v1 import AppTest

from app import analysis
from tests.apptest import follow_run, page
from training.config import TrainConfig
from training.store import RunStore
from training.store.trials import record_stage, record_trial
from tuner.config import SearchConfig

LONG_LR = 0.00012345678901234567
WEIGHTS_ERROR = (
    "error: ImageNet weights for VGG16 could not be fetched (no network). Use --weights none "
    "to train from random initial weights, or --weights PATH with a local file."
)
NOISY_LOG = (
    "2026-12-01 I tensorflow/core/util/port.cc:113] oneDNN custom operations are on.\n"
    "E external/local_xla/xla/stream_executor/cuda/cuda_driver.cc:152] failed call to cuInit\n"
    f"{WEIGHTS_ERROR}\n"
)


@pytest.fixture
def store(tmp_path, monkeypatch) -> RunStore:
    home = tmp_path / "home"
    monkeypatch.setenv("BABYSITTER_HOME", str(home))
    (tmp_path / "data").mkdir()
    return RunStore(home)


def texts(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption]
    parts += [e.value for kind in ("warning", "error", "success", "info") for e in at.get(kind)]
    return "\n".join(str(p) for p in parts)


def progress(at: AppTest) -> list[str]:
    return [p.proto.text for p in at.get("progress")]


def buttons(at: AppTest) -> set[str]:
    return {b.key for b in at.button}


def fake_job(store: RunStore, args: list[str], status: str, run_id=None, log="", code=1) -> int:
    """A job row as ``training.jobs`` writes it, with a log, and no process behind it."""
    folder = store.home / "jobs" / "fake"
    folder.mkdir(parents=True, exist_ok=True)
    log_path = folder / f"{len(list(folder.iterdir()))}.log"
    log_path.write_text(log)
    now = "2026-12-01T10:00:00+00:00"
    with store.connect(write=True) as conn:
        cur = conn.execute(
            "INSERT INTO jobs (run_id, kind, command_json, status, log_path, created_at,"
            " updated_at, exit_code) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                run_id,
                f"{args[0]} {args[1]}",
                json.dumps(args),
                status,
                str(log_path),
                now,
                now,
                code,
            ),
        )
    return int(cur.lastrowid)


def train_config(store: RunStore, **changes) -> dict:
    data = str(store.home.parent / "data")
    return TrainConfig(
        data=data, backbone="VGG16", epochs_head=5, epochs_finetune=3, **changes
    ).to_dict()


def train_run(store: RunStore, status: str = "completed", **changes):
    config = train_config(store, **changes)
    run = store.create_run("train", "VGG16", config, "fp", config["data"])
    if status != "running":
        store.set_status(run.id, status, error=None if status == "completed" else "stopped")
    return store.get_run(run.id)


def epochs(store: RunStore, run_id: str, phases: dict[str, int]) -> None:
    for phase, count in phases.items():
        for epoch in range(1, count + 1):
            metrics = {"loss": 1.0 / epoch, "val_loss": 1.2 / epoch}
            metrics |= {"accuracy": 0.5 + 0.05 * epoch, "val_accuracy": 0.45 + 0.04 * epoch}
            store.record_epoch(run_id, phase, epoch, metrics)


def search_run(store: RunStore, top_k: int = 2):
    """A search whose 4 head trials are done (one with a 17-digit learning rate)."""
    data = str(store.home.parent / "data")
    config = SearchConfig(data=data, backbones=["VGG16"], trials=4, stages=1, top_k=top_k)
    run = store.create_run("search", "VGG16", config.to_dict(), "fp", data)
    space = {"lr": {"kind": "float", "low": 1e-5, "high": 1e-1, "log": True}}
    record_stage(store, run.id, 1, space, 4)
    for i in range(4):
        history = [{"epoch": 1, "loss": 0.9, "accuracy": 0.6, "val_accuracy": 0.55}]
        hp = {"lr": LONG_LR * (i + 1), "head_units": 256, "optimizer": "adam"}
        record_trial(store, run.id, f"s1-0{i}", 1, "completed", hp, 0.5 + i / 10, history, 1.5)
    return run


# -- A: failures up front ----------------------------------------------------------------------


def test_a_job_that_failed_before_creating_a_run_shows_its_error_first(store):
    args = ["training", "train", str(store.home.parent / "data"), "--backbone", "VGG16"]
    job = fake_job(store, [*args, "--weights", "imagenet"], "failed", log=NOISY_LOG)
    at = page("monitor", job_id=job)
    first = at.error[0].value
    assert first.startswith(f"**Job {job} failed:** ImageNet weights for VGG16")
    assert "Weights: imagenet → none" in first and "--weights" not in first
    assert "has not created a run" not in texts(at)
    assert f"resume-{job}" not in buttons(at)
    runs = page("runs")
    row = runs.dataframe[0].value.iloc[0]
    assert row["status"] == "failed" and row["error"].startswith("ImageNet weights for VGG16")


def test_a_run_chosen_elsewhere_is_shown_and_kept_when_no_job_runs(store):
    """Opening Monitor from Results on run B, with an old finished job of run A: B is shown, and
    the Results page still has B afterwards (an old job never replaces the user's choice)."""
    a, b = train_run(store), train_run(store)
    epochs(store, b.id, {"head": 5})
    fake_job(store, ["training", "train", a.config["data"]], "completed", a.id, "done", code=0)
    at = page("monitor", run_id=b.id)
    assert at.radio(key="follow").value == "Run"
    assert at.selectbox(key="monitor_run").value == b.id
    assert at.session_state["run_id"] == b.id
    assert page("monitor", job_id=None).radio(key="follow").value == "Job"  # nothing chosen


def test_error_line_is_the_clis_message_else_a_tracebacks_last_line():
    assert analysis.error_line(NOISY_LOG).startswith("ImageNet weights for VGG16")
    traceback = "Traceback (most recent call last):\n  File x\nValueError: bad shape\n"
    assert analysis.error_line(traceback) == "ValueError: bad shape"
    assert analysis.error_line("Epoch 1/3\nkilled\n") is None


def test_resume_only_when_the_job_has_a_run_to_pick_up(store):
    search = search_run(store)
    store.set_status(search.id, "failed", error="RuntimeError: out of memory")
    data = str(store.home.parent / "data")
    resumable = fake_job(store, ["tuner", "search", data], "failed", search.id)
    at = page("monitor", job_id=resumable)
    assert at.error[0].value.startswith(f"**Job {resumable} failed:** RuntimeError: out of memory")
    assert f"resume-{resumable}" in buttons(at)
    failed_train = train_run(store, "failed")
    done = fake_job(store, ["training", "train", data], "failed", failed_train.id)
    assert f"resume-{done}" not in buttons(page("monitor", job_id=done))  # train resumes no failure
    cut = train_run(store, "interrupted")
    cancelled = fake_job(store, ["training", "train", data], "cancelled", cut.id, code=None)
    at = page("monitor", job_id=cancelled)
    assert f"resume-{cancelled}" in buttons(at) and not at.error


# -- B: the whole story of a search ------------------------------------------------------------


def test_monitor_follows_the_fine_tune_in_progress(store):
    search = search_run(store)
    config = train_config(store, lr=LONG_LR * 4, head_units=256)
    finetuning = {"event": "finetuning", "trial_id": "s1-03", "rank": 1}
    store.append_event(search.id, {**finetuning, "of": 2})
    at = follow_run(search.id)
    assert any("Head search: trials 4 / 4" in t for t in progress(at)), progress(at)
    assert any("#1 (trial s1-03): preparing the data" in t for t in progress(at))
    child = store.create_run("train", "VGG16", config, "fp", config["data"])
    store.append_event(search.id, {**finetuning, "event": "finetune_run", "run": child.id})
    epochs(store, child.id, {"head": 5, "finetune": 1})
    at = follow_run(search.id)
    shown = [t for t in progress(at) if t.startswith("Fine-tunes")]
    assert shown == ["Fine-tunes 0 / 2 done · #1 (trial s1-03): epoch 6 / 8, fine-tune"]
    bar = next(p for p in at.get("progress") if p.proto.text == shown[0])
    assert 0.3 < bar.proto.value / 100 < 0.4  # 6 of 8 epochs of the first of two
    assert f"fine-tune in progress: run {child.id}" in texts(at)
    assert len(at.get("vega_lite_chart")) == 3  # loss, accuracy, gap: of the fine-tune
    assert "measured in inference mode when training ends" in texts(at)  # not the fit-mode gap


def test_finished_fine_tunes_are_listed_and_the_best_ones_curves_shown(store):
    search = search_run(store, top_k=1)
    child = train_run(store)
    epochs(store, child.id, {"head": 2})
    store.append_event(
        search.id,
        {"event": "finetuned", "trial_id": "s1-03", "run_id": child.id, "val_accuracy": 0.5562},
    )
    store.set_status(search.id, "completed", summary={"best_run": child.id, "finetuned": []})
    at = follow_run(search.id)
    assert "Fine-tunes 1 / 1 done" in progress(at)
    table = at.dataframe[0].value
    assert list(table["val accuracy"]) == [55.6]
    assert f"best fine-tune: run {child.id}" in texts(at)


def test_the_search_records_which_train_run_each_fine_tune_is(store, monkeypatch):
    """``_finetune_top`` records that a fine-tune started, then which run it trains in."""
    from tuner import finetune as searching

    run = search_run(store, top_k=1)
    seen = []

    def fake_train(config, store, verbose, echo, on_run):
        child = store.create_run("train", "VGG16", config.to_dict(), "fp", config.data)
        on_run(child.id)
        seen.append((child.id, analysis.finetune_progress(store, store.get_run(run.id))))
        store.set_status(child.id, "completed", summary={"val": {"accuracy": 0.7}})
        return type("Result", (), {"run_id": child.id, "summary": {"val": {"accuracy": 0.7}}})

    monkeypatch.setattr(searching, "train", fake_train)
    config = SearchConfig(data=run.config["data"], backbones=["VGG16"], top_k=1)
    searching.finetune_top(config, store, run.id, echo=lambda m: None)
    child_id, during = seen[0]
    assert during["current"]["trial_id"] == "s1-03" and during["run"].id == child_id
    assert analysis.finetune_progress(store, store.get_run(run.id))["current"] is None


def test_a_fine_tune_killed_after_its_run_completed_is_not_trained_again(store, monkeypatch):
    """A kill between the fine-tune's run completing and the search recording it: ``--resume``
    takes the linked run's result instead of training a second run for the trial."""
    from tuner import finetune as searching

    run = search_run(store, top_k=1)
    child = train_run(store)
    store.set_status(child.id, "completed", summary={"val": {"accuracy": 0.7}})
    linked = {"event": "finetune_run", "trial_id": "s1-03", "rank": 1, "run": child.id}
    store.append_event(run.id, linked)
    monkeypatch.setattr(searching, "train", lambda *a, **k: pytest.fail("trained again"))
    config = SearchConfig(data=run.config["data"], backbones=["VGG16"], top_k=1)
    searching.finetune_top(config, store, run.id, echo=lambda m: None)
    (done,) = [e for e in store.events(run.id) if e.get("event") == "finetuned"]
    assert (done["run_id"], done["val_accuracy"]) == (child.id, 0.7)


# -- C: the gate's job and run tell one story --------------------------------------------------


def test_a_gate_that_found_failures_reads_the_same_on_runs_and_monitor(store):
    config = train_config(store)
    gate = store.create_run("check", "VGG16", config, "fp", config["data"])
    fails = [
        {"check": name, "status": "fail", "measured": 1, "expected": 0, "advice": "x"}
        for name in ("initial_loss", "lr_range")
    ]
    store.add_findings(gate.id, [*fails, {"check": "leakage", "status": "ok"}])
    store.set_status(gate.id, "completed", summary={"gate": "fail"})
    job = fake_job(store, ["training", "check", config["data"]], "failed", gate.id, "Gate fail.")
    story = "completed — gate failed: 2 checks"
    runs = page("runs")
    assert runs.dataframe[0].value.iloc[0]["status"] == story
    assert runs.dataframe[1].value.iloc[0]["status"] == story
    assert runs.dataframe[1].value.iloc[0]["error"] == ""
    at = page("monitor", job_id=job)
    assert f"`{story}`" in at.markdown[0].value and "exit code" not in at.markdown[0].value
    assert at.error[0].value == f"{story} (initial_loss, lr_range)"
    assert "failed:**" not in texts(at)


# -- D: advice in the app's words, 3 significant digits, one percent format --------------------


def test_results_advice_uses_form_fields_and_never_the_value_in_use(store):
    run = train_run(store, head_units=256, lr=LONG_LR)
    old = "Lower --l2 to 1e-05; if that is not enough, add capacity (--head-units 256)."
    same = {"op": "raise", "param": "head_units", "from": 128, "to": 256}
    wider = {"op": "raise", "param": "head_units", "from": 256, "to": 512}
    store.add_findings(
        run.id,
        [
            {
                "check": "underfitting",
                "status": "warn",
                "measured": 0.5,
                "expected": 0.6,
                "advice": old,
                "action": same,
            },
            {
                "check": "generalization_gap",
                "status": "warn",
                "measured": 0.2,
                "expected": 0.1,
                "advice": "Regularize: --head-units 512.",
                "action": wider,
            },
        ],
    )
    store.set_status(
        run.id,
        "completed",
        summary={"train": {"accuracy": 0.5562}, "val": {"accuracy": 0.545}, "gap": 0.0112},
    )
    at = page("results", run_id=run.id)
    body = texts(at)
    assert "--" not in body.replace("— ", "")
    assert "Head units already 256" in body and "Head units: 128 → 256" not in body
    assert "**Suggested change:** Head units: 256 → 512" in body
    assert [m.value for m in at.metric] == ["55.6%", "54.5%", "+1.1%"]


def test_hyperparameters_to_three_digits_and_accuracy_as_percent(store):
    search = search_run(store)
    at = page("command_center", run_id=search.id)
    table = at.dataframe[0].value
    assert list(table["lr"]) == [0.000123, 0.000247, 0.00037, 0.000494]
    assert list(table["val_accuracy"]) == [50.0, 60.0, 70.0, 80.0]
    assert at.metric[3].value == "80.0%"
    monitor = follow_run(search.id)
    assert monitor.dataframe[0].value["lr"].iloc[0] == 0.000123
    hps = {"lr": LONG_LR, "head_units": 256}
    store.set_status(
        search.id, "completed", summary={"best_trial": "s1-00", "hyperparameters": hps}
    )
    results = page("results", run_id=search.id)
    assert list(results.dataframe[0].value["value"]) == ["0.000123", "256"]
