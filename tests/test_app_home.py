"""The app opens on Home (what Babysitter does, its three steps linked with where each stands),
and Runs leads on: its empty hint links to the first steps, its tables show "–" where a value is
missing, and a run's row opens the page that reads it. Stores filled by hand, no training."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from tests.apptest import APP, TIMEOUT, page
from tests.imagegen import make_image_folder
from tests.test_app_monitor import fake_job, train_run
from training import jobs
from training.store import RunStore

STEPS = [("datasets", "1. Add a dataset"), ("launch", "2. Launch"), ("results", "3. Read results")]


@pytest.fixture
def store(babysitter_home) -> RunStore:
    return RunStore(babysitter_home)


def links(at: AppTest) -> list[tuple[str, str]]:
    """Each page link as (the page it opens, its label)."""
    return [(link.proto.page, link.value) for link in at.get("page_link")]


def captions(at: AppTest) -> list[str]:
    return [c.value for c in at.caption]


def open_row(at: AppTest, row: int) -> AppTest:
    """Click a row of the runs table (AppTest sets a selection through the session state)."""
    at.session_state["runs_table"] = {"selection": {"rows": [row], "columns": [], "cells": []}}
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_the_app_opens_on_home_saying_what_it_does_and_linking_three_steps(store):
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert not at.exception and at.title[0].value == "Babysitter"
    intro = at.markdown[0].value
    assert "fine-tunes pretrained Keras backbones on your labelled image folders" in intro
    assert "hyperparameters" in intro and "CS231n" in intro and "why a run goes wrong" in intro
    assert links(at) == STEPS
    assert captions(at) == ["No datasets", "No jobs running", "No completed runs"]


def test_home_says_where_each_step_stands(store, tmp_path, monkeypatch):
    make_image_folder(tmp_path / "data", {"cat": 2, "dog": 2})  # the runs' dataset
    other = make_image_folder(tmp_path / "other", {"cat": 2, "dog": 2})
    add = page("datasets")
    add.text_input(key="folder").input(str(other)).run()
    add.button(key="add_folder").click().run()
    for _ in range(3):
        train_run(store)
    train_run(store, status="failed")
    fake_job(store, ["training", "train", str(other)], "running")
    monkeypatch.setattr(jobs, "_wrapper_alive", lambda job: True)  # no process behind the row
    assert captions(page("home")) == ["2 datasets", "1 job running", "3 completed runs"]


def test_runs_without_runs_links_to_adding_a_dataset_and_launching(store):
    at = page("runs")
    assert at.info[0].value.startswith("No runs yet")
    assert links(at) == [("datasets", "Add a dataset"), ("launch", "Launch")]


def test_runs_tables_show_a_dash_where_a_value_is_missing(store):
    run = train_run(store)  # completed without a summary: no validation accuracy
    fake_job(store, ["training", "train", run.dataset], "failed")  # failed before a run
    at = page("runs")
    runs, found = (table.value for table in at.dataframe)
    assert list(runs["val accuracy"]) == ["–"] and list(found["run"]) == ["–"]


def test_a_completed_runs_row_opens_its_results(store):
    done = train_run(store)
    train_run(store, status="failed")
    at = page("runs")
    assert list(at.dataframe[0].value["id"])[1] == done.id  # newest first
    at = open_row(at, 1)
    assert at.title[0].value == "Results" and at.session_state["run_id"] == done.id


def test_a_run_without_results_opens_on_monitor_following_that_run(store, monkeypatch):
    failed = train_run(store, status="failed")
    train_run(store)
    fake_job(store, ["training", "train", failed.dataset], "running")  # Monitor's first choice
    monkeypatch.setattr(jobs, "_wrapper_alive", lambda job: True)
    at = open_row(page("runs"), 1)
    assert at.title[0].value == "Monitor" and at.session_state["run_id"] == failed.id
    assert at.radio(key="follow").value == "Run"
    assert at.selectbox(key="monitor_run").value == failed.id
