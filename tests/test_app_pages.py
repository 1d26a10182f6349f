"""Every page of the app with ``streamlit.testing`` AppTest, on a store holding real runs.

The module's store is made once by the real CLI: a tiny ``train`` run and a tiny 2-stage
``search`` (4 trials, top 1 fine-tuned), both VGG16 without weights at 32 px.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.apptest import follow_run, page
from tests.cli_process import ROOT, cli_env
from tests.imagegen import (
    class_image,
    make_image_folder,
    make_shapes_folder,
    photo_image,
    zip_folder,
)
from training import jobs
from training.store import RunStore

pytestmark = pytest.mark.slow  # the module's store is made by real (tiny) training runs
TINY = ["--weights", "none", "--image-size", "32", "--batch-size", "8", "--seed", "0"]
"""Seeded: the same runs every time. Their findings fail (8 images a class is too few), which a
train or search reports and still exits 0: only an error (a diverged loss, a refused flag) is 1."""


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    base = tmp_path_factory.mktemp("app")
    home = base / "home"
    data = make_image_folder(base / "data", {"cat": 8, "dog": 8})
    env = cli_env(home)
    for module, args in (
        ("training", ["train", str(data), "--backbone", "VGG16", "--epochs-head", "3"]),
        ("tuner", ["search", str(data), "--backbone", "VGG16", "--trials", "4", "--stages", "2"]),
    ):
        if module == "training":
            args += ["--epochs-finetune", "1", "--lr", "auto"]
        else:
            args += ["--epochs-head", "2", "--epochs-finetune", "0", "--top-k", "1"]
        done = subprocess.run(
            [sys.executable, "-m", module, *args, *TINY],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-3000:])
    store = RunStore(home)
    (search,) = store.list_runs(kind="search")
    train = next(r for r in store.list_runs(kind="train") if r.config.get("epochs_finetune") == 1)
    assert (search.status, train.status) == ("completed", "completed")
    yield {"home": home, "data": data, "base": base, "search": search, "train": train}
    for job in jobs.list_jobs(store, status="running"):  # a failed test leaves no process behind
        jobs.cancel(store, job.id, grace_s=5)


@pytest.fixture
def home(made, monkeypatch):
    monkeypatch.setenv("BABYSITTER_HOME", str(made["home"]))
    return made["home"]


@pytest.fixture
def launchable(home, made, monkeypatch):
    """The Launch page lists the module's dataset: its folder is under the data roots."""
    monkeypatch.setenv("BABYSITTER_DATA_ROOTS", str(made["base"]))
    return home


def charts(at: AppTest) -> list:
    return at.get("vega_lite_chart")


def texts(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption]
    parts += [e.value for kind in ("warning", "error", "success", "info") for e in at.get(kind)]
    return "\n".join(str(p) for p in parts)


def test_router_lists_every_page_and_runs_shows_the_runs(home, made):
    at = page("runs")
    assert at.title[0].value == "Runs"
    table = at.dataframe[0].value
    assert made["search"].id in set(table["id"]) and made["train"].id in set(table["id"])
    for name in ("home", "datasets", "launch", "monitor", "command_center", "results", "predict"):
        assert page(name).title, name


def test_datasets_upload_zip_unpacks_under_the_store_and_audits(home, made, tmp_path):
    archive = zip_folder(made["data"], tmp_path / "pets.zip", top_level="pets")
    at = page("datasets")
    at.file_uploader(key="upload").set_value(("pets.zip", archive.read_bytes(), "application/zip"))
    at.run()
    at.button(key="unpack").click().run()
    assert not at.exception
    root = Path(at.session_state["dataset"])
    assert root.is_dir() and root.resolve().is_relative_to(RunStore(home).datasets_dir())
    assert "Unpacked to" in texts(at)
    assert at.metric[0].value == "2" and at.metric[1].value == "16"
    assert len(charts(at)) == 1
    assert len(at.get("image")) == 2  # one gallery per class
    assert not list((RunStore(home).datasets_dir() / "uploads").glob("*.zip"))
    # Listed for reuse on the next visit and on the Launch page.
    again = page("datasets")
    assert again.selectbox(key="dataset_pick").value == str(root)
    assert again.selectbox(key="dataset_pick").options == ["pets"]


def test_datasets_refuses_an_unsafe_zip_and_writes_nothing_outside(home, tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("../evil/cat/a.png", b"x")
    at = page("datasets")
    at.file_uploader(key="upload").set_value(("evil.zip", buffer.getvalue(), "application/zip"))
    at.run()
    at.button(key="unpack").click().run()
    assert at.error and "evil.zip" in at.error[0].value
    assert not (RunStore(home).datasets_dir().parent / "evil").exists()


def test_datasets_folder_shows_unreadable_files_duplicates_and_imbalance(home, tmp_path):
    folder = make_image_folder(tmp_path / "messy", {"cat": 12, "dog": 3})
    (folder / "cat" / "broken.png").write_bytes(b"not an image")
    shutil.copy(folder / "dog" / "img_0013.png", folder / "dog" / "copy.png")
    at = page("datasets")
    at.text_input(key="folder").input(str(folder)).run()
    at.button(key="add_folder").click().run()
    assert not at.exception
    assert at.session_state["dataset"] == str(folder.resolve())
    unreadable = at.table[0].value
    assert list(unreadable["file"]) == ["cat/broken.png"]
    body = texts(at)
    assert "duplicate" in body and "copy.png" in body
    assert "imbalanced" in body


def test_datasets_shows_leaking_pairs_side_by_side_with_their_evidence(tmp_path, monkeypatch):
    monkeypatch.setenv("BABYSITTER_HOME", str(tmp_path / "home"))  # no trained runs needed
    root = make_shapes_folder(tmp_path / "shapes", {"train": 10, "val": 4})
    photo_image(3).save(root / "train" / "circle" / "photo.png")
    photo_image(3).resize((64, 64)).save(root / "val" / "circle" / "photo.jpg", quality=80)
    shutil.copy(root / "train" / "square" / "img_0011.png", root / "val" / "square" / "copy.png")
    at = page("datasets")
    at.text_input(key="folder").input(str(root)).run()
    at.button(key="add_folder").click().run()
    assert not at.exception
    body = texts(at)
    assert "leak (exact)" in body and "val/square/copy.png (val)" in body
    assert "leak (near)" in body and "val/circle/photo.jpg (val)" in body
    assert "hash distance" in body and "thumbnail difference" in body
    assert body.count("leak (") == 2  # the look-alike shapes are not shown as leaks


def test_datasets_shows_the_latest_checks_labels_worth_a_second_look(tmp_path, monkeypatch):
    import numpy as np

    from bench import zoo_data
    from training.config import TrainConfig
    from training.gate import run_gate

    monkeypatch.setenv("BABYSITTER_HOME", str(tmp_path / "home"))
    root = zoo_data.make_lookalike(tmp_path / "shapes", 20, 10, size=32)
    zoo_data.relabel_training(root, 1.0, np.random.default_rng(0))
    config = TrainConfig(data=str(root), backbone="VGG16", weights="none", image_size=32)
    run_gate(config, verbose=0, echo=lambda m: None)
    at = page("datasets")
    at.text_input(key="folder").input(str(root)).run()
    at.button(key="add_folder").click().run()
    assert not at.exception
    assert any("Labels worth a second look" in h.value for h in at.subheader)
    body = texts(at)
    assert "training labels" in body and "→" in body and len(at.get("image")) > 3


def test_launch_starts_the_search_command_shown_as_a_job(launchable, made):
    at = page("launch", dataset=str(made["data"]))
    at.multiselect(key="backbones").set_value(["VGG16"]).run()
    at.number_input(key="image_size").set_value(32)
    at.selectbox(key="weights").set_value("none")
    at.number_input(key="batch_size").set_value(8)
    at.number_input(key="trials").set_value(2)
    at.number_input(key="stages").set_value(1)
    at.number_input(key="epochs_head").set_value(1)
    at.number_input(key="epochs_finetune").set_value(0)
    at.number_input(key="top_k").set_value(1).run()
    shown = at.code[0].value
    assert shown.startswith("python -m tuner search ") and "--backbone VGG16" in shown
    assert "--trials 2" in shown and "--weights none" in shown
    assert at.code[1].value.startswith("python -m training check ")
    assert "Estimated time" in at.metric[0].label
    at.button(key="launch").click().run()
    assert not at.exception
    store = RunStore(launchable)
    job = jobs.get_job(store, at.session_state["job_id"])
    assert job.command_line == shown
    deadline = time.monotonic() + 240
    while job.status == "running" and time.monotonic() < deadline:
        time.sleep(0.5)
        jobs.refresh(store)
        job = jobs.get_job(store, job.id)
    assert job.status == "completed", jobs.log_tail(job)
    run = store.get_run(job.run_id)  # the run the job made, by its record, not by its time
    assert run.kind == "search" and run.config["trials"] == 2 and run.created_at > job.created_at


def test_launch_check_first_starts_the_gate_then_monitor_cancels_it(launchable, made):
    at = page("launch", dataset=str(made["data"]))
    at.multiselect(key="backbones").set_value(["VGG16"]).run()
    at.selectbox(key="weights").set_value("none").run()
    at.button(key="check").click().run()
    job_id = at.session_state["job_id"]
    store = RunStore(launchable)
    assert jobs.get_job(store, job_id).kind == "training check"
    assert f"sanity gate is running (job {job_id})" in texts(at)
    mon = page("monitor", job_id=job_id)
    assert f"Job {job_id}" in texts(mon)
    if jobs.get_job(store, job_id).status == "running":
        mon.button(key=f"cancel-{job_id}").click().run()
        assert jobs.get_job(store, job_id).status == "cancelled"
    else:  # the gate was faster than the click
        assert jobs.get_job(store, job_id).status in ("completed", "failed")


def test_monitor_a_search_run_progress_curves_findings(home, made):
    at = follow_run(made["search"].id)
    assert not at.exception
    body = texts(at)
    progress = [p.proto.text for p in at.get("progress")]
    assert any(t.startswith("Head search: trials 4 / 4") for t in progress), progress
    assert "Fine-tunes 1 / 1 done" in progress
    assert len(charts(at)) == 3  # loss, accuracy, gap of the fine-tuned model
    assert "Curves of the best fine-tune" in body
    assert "Edge of range" in body
    assert len(at.dataframe[0].value) == 1  # the fine-tune
    assert len(at.dataframe[-1].value) == 4  # the trials


def test_monitor_a_train_run_shows_epochs_of_both_phases(home, made):
    at = follow_run(made["train"].id)
    progress = [p.proto.text for p in at.get("progress")]
    assert any("Epochs 4 / 4" in t for t in progress), progress
    assert len(charts(at)) == 3


def test_monitor_follows_a_job_resume_after_cancel(home, made):
    store = RunStore(home)
    args = ["training", "train", str(made["data"]), "--backbone", "VGG16", *TINY]
    args += ["--epochs-head", "5000", "--epochs-finetune", "0", "--seed", "7"]
    job = jobs.start_job(store, args)
    deadline = time.monotonic() + 120
    while not jobs.get_job(store, job.id).run_id and time.monotonic() < deadline:
        time.sleep(0.3)
        jobs.refresh(store)
    at = page("monitor", job_id=job.id)
    assert at.radio(key="follow").value == "Job"
    at.button(key=f"cancel-{job.id}").click().run()
    assert jobs.get_job(store, job.id).status == "cancelled"
    at.button(key=f"resume-{job.id}").click().run()
    new_id = at.session_state["job_id"]
    assert new_id != job.id and jobs.get_job(store, new_id).command == job.command
    jobs.cancel(store, new_id, grace_s=20)


def test_command_center_plots_each_hyperparameter_with_ranges_and_edges(home, made):
    at = page("command_center", run_id=made["search"].id)
    body = texts(at)
    assert "**lr** (log scale)" in body and "**dropout**" in body
    assert "(log scale)" not in body.split("**dropout**")[1].split("\n")[0]
    assert len(charts(at)) >= 7
    assert any("high edge" in w.value for w in at.warning)
    assert "stage 2:" in body
    table = at.dataframe[0].value
    assert len(table) == 4 and {"trial", "stage", "status", "val_accuracy", "lr"} <= set(table)
    spec = charts(at)[0].proto.spec
    assert '"type": "log"' in spec or '"type":"log"' in spec


def test_results_confusion_matrix_mistakes_and_model_download(home, made):
    at = page("results", run_id=made["search"].id)
    body = texts(at)
    assert "Best trial" in at.subheader[0].value
    assert at.metric[0].label == "Train accuracy"
    per_class = at.dataframe[-1].value
    assert list(per_class["class"]) == ["cat", "dog"]
    assert "confusion matrix (4 images)" in " ".join(s.value for s in at.subheader)
    assert "Diagnosis and advice" in " ".join(s.value for s in at.subheader)
    # The run's one diagnosis comes first, above the findings it explains.
    boxes = [e.value for kind in ("success", "warning", "error") for e in at.get(kind)]
    diagnosis = [b for b in boxes if b.startswith("**Diagnosis.**")]
    assert len(diagnosis) == 1, boxes
    download = at.get("download_button")
    assert download and download[0].proto.label == "Download model (.keras)"
    assert download[-1].proto.label == "Download model card (.md)"  # the search's fine-tune
    mistakes = [c for c in body.split("\n") if ", predicted **" in c]
    assert mistakes or "No mistakes" in body
    if mistakes:
        assert at.get("image")


def test_results_of_a_train_run_says_the_rate_lr_auto_picked(home, made):
    body = texts(page("results", run_id=made["train"].id))
    assert "lr auto → " in body, body  # the same line the CLI printed after the run


def test_results_converts_the_model_to_tflite_for_download(home, made):
    pytest.importorskip("tensorflow")
    at = page("results", run_id=made["train"].id)
    at.button(key="convert_tflite").click().run(timeout=600)
    failed = [e.value for e in at.error if "TFLite" in e.value]
    assert not at.exception and not failed, failed
    labels = [b.proto.label for b in at.get("download_button")]
    card = "Download model card (.md)"
    assert labels == ["Download model (.keras)", "Download model (.tflite)", card]
    exported = RunStore().artifact(made["train"].id, "model").parent / "export" / "model.tflite"
    assert exported.stat().st_size > 10_000


def test_predict_top_k_for_an_uploaded_image(home, made):
    at = page("predict", run_id=made["train"].id)
    buffer = io.BytesIO()
    class_image(0, 3).save(buffer, "PNG")
    at.file_uploader(key="images").set_value(
        [("cat.png", buffer.getvalue(), "image/png"), ("bad.png", b"nope", "image/png")]
    )
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any(m.value.startswith("**cat**") or m.value.startswith("**dog**") for m in at.markdown)
    assert len(charts(at)) == 1
    assert len(at.error) == 1  # the unreadable upload, named next to its reason


def test_architecture_table_totals_and_charts(home):
    at = page("architecture")
    at.selectbox(key="arch_backbone").set_value("VGG16").run()
    at.number_input(key="arch_size").set_value(32).run()
    assert not at.exception
    rows = at.dataframe[0].value
    assert "block1_conv1" in set(rows["layer"])
    assert rows["params"].sum() == 14714688  # VGG16 without the top
    assert at.metric[0].label == "Parameters"
    assert len(charts(at)) == 2


def test_app_module_imports_no_keras():
    code = (
        "import sys, app.charts, app.launch, app.analysis, app.common, training.jobs;"
        " print('keras' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == "False"
