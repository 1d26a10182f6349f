"""The Launch page and its helpers: one validated config, one job per submission, weights the
job can use, values that stay, a measured estimate, a failed gate that asks first.

AppTest runs the page in this process, so no job process is started: ``jobs.start_job`` is
replaced by one that only writes the job's row (the real start is tested in test_jobs.py and,
through the app, in test_app_pages.py and the browser test).
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from app import estimate, launch, weights
from app.common import remember_folder
from tests.cli_process import ROOT
from tests.imagegen import make_image_folder
from training import jobs
from training.config import TrainConfig
from training.errors import ConfigError
from training.fields import from_args
from training.model.backbones import get_backbone
from training.store import RunStore
from tuner import cli as tuner_cli
from tuner.config import SearchConfig

APP = str(ROOT / "app" / "streamlit_app.py")


@pytest.fixture
def data(tmp_path, babysitter_home):
    """A dataset the Launch page lists (remembered, under the data roots)."""
    folder = make_image_folder(tmp_path / "pets", {"cat": 10, "dog": 10})
    remember_folder(RunStore(babysitter_home), folder.resolve())
    return folder.resolve()


@pytest.fixture
def started(monkeypatch):
    """``jobs.start_job`` writing the row only; the argument lists it was given."""
    calls: list[list[str]] = []

    def start(store, args):
        calls.append(list(args))
        return jobs.get_job(store, jobs.record_job(store, list(args)))

    monkeypatch.setattr(jobs, "start_job", start)
    return calls


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    """No internet and an empty Keras cache, unless a test puts a file there."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setattr(weights, "can_connect", lambda url, timeout=0: False)
    monkeypatch.setattr(weights, "keras_cache_dirs", lambda: [tmp_path / "keras" / "models"])


def launch_page(at: AppTest | None = None) -> AppTest:
    if at is None:  # (an AppTest before its first run is falsy: no `or` here)
        at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page("views/launch.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def small(at: AppTest) -> AppTest:
    """The tiny settings the other tests launch with."""
    at.multiselect(key="backbones").set_value(["VGG16"])
    at.number_input(key="image_size").set_value(32)
    at.selectbox(key="weights").set_value("none")
    at.number_input(key="trials").set_value(2)
    at.number_input(key="stages").set_value(1)
    return at.run()


def search_command(at: AppTest) -> str:
    return at.code[0].value


# -- one config, exact arguments --------------------------------------------------------------


def test_the_search_command_parses_back_into_the_same_config():
    config = SearchConfig(
        data="/data/my pets",
        backbones=["VGG16", "ResNet50"],
        image_size=64,
        trials=8,
        top_k=1,
        space=["lr=1e-4:1e-2"],
        seed=3,
    )
    args = launch.search_args(config)
    parsed = tuner_cli.build_parser().parse_args(args[1:])
    assert parsed.backbones == "VGG16,ResNet50"
    assert from_args(SearchConfig, parsed) == config  # every field, as the CLI will build it
    assert launch.command_line(args).startswith("python -m tuner search '/data/my pets'")
    check = launch.check_args(config)
    assert check[:5] == ["training", "check", "/data/my pets", "--backbone", "VGG16"]
    assert "--trials" not in check and check[check.index("--seed") + 1] == "3"


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"trials": 0}, "Trials must be at least 1."),
        ({"trials": 2, "stages": 3}, "Stages must be at most 2: every stage needs at least"),
        ({"top_k": 5, "trials": 4}, "Top K fine-tuned must be at most 4"),
        ({"image_size": 16}, "Image size must be at least 32: the smallest VGG16 accepts."),
        ({"batch_size": 0}, "Batch size must be at least 1."),
        ({"epochs_head": 0}, "Head epochs must be at least 1."),
        ({"backbones": []}, "Backbones: pick at least one."),
    ],
)
def test_a_refused_field_is_named_in_the_forms_words(changes, message):
    with pytest.raises(ConfigError) as refused:
        SearchConfig(**{"data": "/d", "backbones": ["VGG16"], **changes})
    assert launch.problem(refused.value).startswith(message)
    assert "--" in str(refused.value)  # the CLI still names its flag


def test_the_config_imports_no_keras():
    code = "import sys, tuner.config, app.launch, app.estimate; print('keras' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == "False"


def test_an_invalid_field_disables_launch_and_the_shown_value_is_launched(data, started):
    at = small(launch_page())
    at.number_input(key="trials").set_value(0).run()
    assert at.error[0].value == "Trials must be at least 1."
    assert at.button(key="launch").disabled and not at.code  # no command from a refused value
    at.number_input(key="trials").set_value(3).run()
    assert "--trials 3" in search_command(at) and not at.button(key="launch").disabled
    at.button(key="launch").click().run()
    assert len(started) == 1 and launch.command_line(started[0]) == search_command(at)
    assert at.code[0].proto.wrap_lines  # long commands wrap instead of scrolling


def test_a_launch_is_drawn_started_and_a_rerun_starts_no_second_job(data, started):
    """(A real double-click, whose second click lands before the redraw, is in the browser
    test; here the click is followed by reruns of the script.)"""
    at = small(launch_page())
    at.button(key="launch").click().run()
    assert at.button(key="launch").disabled  # drawn again at once: no second click to give
    at.run()
    at.run()
    assert len(started) == 1
    assert f"Started job {at.session_state['job_id']}" in at.success[0].value
    at.button(key="relaunch").click().run()  # on purpose: the same settings again
    at.button(key="launch").click().run()
    assert len(started) == 2 and started[0] == started[1]


# -- state that stays ---------------------------------------------------------------------------


def test_values_survive_other_pages_and_the_last_launch_seeds_a_new_session(data, started):
    at = small(launch_page())
    at.number_input(key="epochs_head").set_value(4).run()
    at.switch_page("views/monitor.py")
    at.run()
    at = launch_page(at)
    assert at.number_input(key="epochs_head").value == 4
    assert at.multiselect(key="backbones").value == ["VGG16"]
    at.button(key="launch").click().run()
    fresh = launch_page()  # a reload: a new session
    assert fresh.number_input(key="trials").value == 2
    assert fresh.number_input(key="epochs_head").value == 4
    assert search_command(fresh) == launch.command_line(started[0])


# -- weights ------------------------------------------------------------------------------------


def test_without_cached_or_reachable_imagenet_weights_the_form_starts_random(data):
    at = launch_page()
    assert at.selectbox(key="weights").value == "none"
    note = at.info[0].value
    assert "not in the Keras cache" in note and "cannot be reached" in note
    assert "--weights" not in note and "**A weights file** under Weights" in note
    at.selectbox(key="weights").set_value("imagenet").run()
    assert "would fail" in at.warning[0].value and "**None**" in at.warning[0].value


def test_cached_imagenet_weights_are_the_default(data, tmp_path):
    cache = tmp_path / "keras" / "models"
    cache.mkdir(parents=True)
    (cache / weights.imagenet_file(get_backbone("MobileNetV2"), 224)).write_bytes(b"h5")
    at = launch_page()
    assert at.selectbox(key="weights").value == "imagenet" and not at.info and not at.warning
    assert "--weights imagenet" in search_command(at)


def test_an_uploaded_weights_file_is_kept_and_checked(data, started, babysitter_home, tmp_path):
    at = small(launch_page())
    at.selectbox(key="weights").set_value("file").run()
    assert at.button(key="launch").disabled  # no file yet
    at.text_input(key="weights_file").input("/etc/passwd").run()
    assert "only files under" in at.warning[0].value and at.button(key="launch").disabled
    at.file_uploader(key="weights_upload").set_value(
        ("../my vgg.weights.h5", b"h5", "application/octet-stream")
    )
    at.run()
    upload = babysitter_home / "weights" / "my_vgg.weights.h5"  # under the home, named safely
    assert upload.read_bytes() == b"h5" and at.text_input(key="weights_file").value == str(upload)
    # Not weights: refused in the form, not in the job (files that fit: test_weights_check.py).
    refused = "Weights file: not an HDF5 file."
    assert [e.value for e in at.error] == [refused] and at.button(key="launch").disabled
    typed = tmp_path / "notes.h5"  # under the data roots, but text
    typed.write_text("not weights")
    at.text_input(key="weights_file").input(str(typed)).run()
    assert [e.value for e in at.error] == [refused] and at.button(key="launch").disabled
    assert not started


def test_imagenet_file_names_follow_keras():
    assert weights.imagenet_file(get_backbone("MobileNetV2"), 96) == (
        "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_96_no_top.h5"
    )
    assert weights.imagenet_file(get_backbone("MobileNet"), 100) == "mobilenet_1_0_224_tf_no_top.h5"
    assert weights.imagenet_file(get_backbone("EfficientNetV2S"), 384) == (
        "efficientnetv2-s_notop.h5"
    )
    assert weights.imagenet_file(get_backbone("ResNet50V2"), 224) == (
        "resnet50v2_weights_tf_dim_ordering_tf_kernels_notop.h5"
    )


# -- the sanity gate ----------------------------------------------------------------------------


def stored_gate(store: RunStore, data, verdict: str, check: str, advice: str) -> str:
    """A finished gate run on ``data`` (VGG16, no weights, 32 px): one passed check and
    ``check`` with the verdict's status (measured 0.55, expected 0.99) and ``advice``."""
    config = TrainConfig(data=str(data), backbone="VGG16", weights="none", image_size=32)
    run = store.create_run("check", "VGG16", config.to_dict(), "gate", str(data))
    passed = {"check": "initial loss", "status": "ok", "measured": 0.69, "expected": 0.69}
    found = {"check": check, "status": verdict, "measured": 0.55, "expected": 0.99}
    store.add_findings(run.id, [passed, {**found, "advice": advice}])
    store.set_status(run.id, "completed", summary={"gate": verdict})
    return run.id


def failed_gate(store: RunStore, data) -> str:
    return stored_gate(
        store, data, "fail", "overfitting a tiny subset", "The model cannot learn 20 images."
    )


def test_a_failed_gate_shows_its_checks_and_launch_asks_first(data, started, babysitter_home):
    run_id = failed_gate(RunStore(babysitter_home), data)
    at = small(launch_page())
    shown = "\n".join(e.value for e in at.error)
    assert f"sanity gate failed on this dataset with VGG16 (run {run_id})" in shown
    assert "Overfitting a tiny subset" in shown and "initial loss" not in shown.lower()
    assert at.button(key="launch").disabled
    at.checkbox(key=f"confirm-{run_id}").check().run()
    at.button(key="launch").click().run()
    assert len(started) == 1


def test_a_gate_job_that_failed_before_checking_shows_its_error(data, babysitter_home):
    store = RunStore(babysitter_home)
    job_id = jobs.record_job(store, ["training", "check", str(data), "--backbone", "VGG16"])
    log = store.home / "jobs" / str(job_id) / jobs.LOG_NAME
    log.write_text("Auditing…\nerror: Expected at least 2 classes.\n")
    jobs.update_job(store, job_id, status="failed", exit_code=2, log_path=str(log))
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["check_job"] = job_id
    at = small(launch_page(at))
    assert f"(job {job_id}) failed before checking: error: Expected at least 2" in at.error[0].value
    assert not at.button(key="launch").disabled  # nothing was checked: nothing to confirm


# -- the estimate -------------------------------------------------------------------------------


def measured_run(store: RunStore, data) -> None:
    config = TrainConfig(data=str(data), backbone="VGG16", weights="none", image_size=32)
    run = store.create_run("train", "VGG16", config.to_dict(), "t", str(data))
    store.append_event(run.id, {"event": "started", "splits": {"train": 80, "val": 20}})
    for phase, seconds in (("head", [3.0, 0.5, 0.5]), ("finetune", [8.0, 8.0])):
        for epoch, spent in enumerate(seconds, 1):
            store.record_epoch(run.id, phase, epoch, {"seconds": spent})
    store.set_status(run.id, "completed")


def test_the_estimate_is_a_range_measured_from_earlier_epochs(data, babysitter_home):
    at = small(launch_page())
    assert at.metric[0].label == "Estimated time (a first guess)"
    assert "a guess from its size" in at.metric[0].proto.help
    store = RunStore(babysitter_home)
    measured_run(store, data)
    rates = estimate.rates_for(store, "VGG16", 32)
    assert rates.runs == 1 and rates.finetune == pytest.approx(8.0 / 80)
    assert rates.head_step == pytest.approx(0.5 / 3)  # past the compile, per step of 32
    st.cache_data.clear()  # the page keeps what it read for a few seconds
    at = small(launch_page())
    assert at.metric[0].label == "Estimated time" and "–" in at.metric[0].value
    assert "measured from 1 earlier run" in at.metric[0].proto.help


def test_the_estimate_counts_trials_epochs_and_fine_tunes():
    rates = {"VGG16": estimate.guessed_rates(get_backbone("VGG16"), 64)}

    def seconds(**changes):
        config = SearchConfig(data="/d", backbones=["VGG16"], image_size=64, **changes)
        guess = estimate.estimate(config, 500, rates, None, None)
        assert guess.low < guess.high and not guess.measured
        return guess.high

    base = seconds()
    assert seconds(trials=40) > base and seconds(top_k=4) > base
    assert seconds(epochs_finetune=9) > base and seconds(epochs_head=20) > base


@pytest.mark.parametrize(
    "low, high, shown",
    [
        (20, 40, "20–40 s"),
        (50, 150, "50 s – 3 min"),
        (100, 170, "1–3 min"),
        (4000, 9000, "66 min – 2.5 h"),
    ],
)
def test_human_range(low, high, shown):
    assert estimate.human_range(low, high) == shown
