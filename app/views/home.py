"""Home: what Babysitter does, and its three steps, each linked, with where each stands."""

from __future__ import annotations

import streamlit as st

from app.common import has_results, known_datasets, store, warn_unreadable
from training import jobs

INTRO = (
    "Babysitter fine-tunes pretrained Keras backbones on your labelled image folders and "
    "searches their hyperparameters.  \n"
    "It watches training the way CS231n teaches (babysitting the learning process) and tells "
    "you why a run goes wrong."
)


def count(n: int, thing: str, things: str | None = None) -> str:
    """``n`` things in words: "No datasets", "1 dataset", "2 datasets"."""
    things = things or thing + "s"
    return f"No {things}" if n == 0 else f"{n} {thing if n == 1 else things}"


def steps(s) -> list[tuple[str, str, str, str]]:
    """Page, label, icon and state of each step: datasets to train on, jobs running now, runs
    whose results can be read."""
    running = sum(job.status == "running" for job in jobs.refresh(s))
    done = sum(has_results(run) for run in s.list_runs())
    return [
        (
            "views/datasets.py",
            "1. Add a dataset",
            ":material/photo_library:",
            count(len(known_datasets(s)), "dataset"),
        ),
        (
            "views/launch.py",
            "2. Launch",
            ":material/rocket_launch:",
            count(running, "job running", "jobs running"),
        ),
        (
            "views/results.py",
            "3. Read results",
            ":material/insights:",
            count(done, "completed run"),
        ),
    ]


st.title("Babysitter")
st.markdown(INTRO)
warn_unreadable(store())
for column, (page, label, icon, state) in zip(st.columns(3), steps(store()), strict=True):
    with column:
        st.page_link(page, label=label, icon=icon)
        st.caption(state)
