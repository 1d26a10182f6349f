"""Would more data help? The learning curve drawn with its projection band (Results, Datasets).

The curve is computed by every search (``summary["learning_curve"]``) and by ``python -m
training learning-curve``; the pages only read and draw it, never train (a page render must not
start work). The chart is a pure function of the stored curve, testable without Streamlit.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from app.charts import PERCENT
from training.babysit.learning_curve import advice, summary_line
from training.store import Run, RunStore

TITLE = "Would more data help?"
COMMAND = "python -m training learning-curve DATA"  # no flags: the app speaks in form fields


def curve_chart(curve: Mapping[str, Any]) -> alt.LayerChart | None:
    """Validation accuracy against training images (log axis): each seed's point, the fitted
    curve (dashed past the images there are), its 90% band, the 2× and 4× projections with
    their ranges, and a rule at today's size. None for a curve that could not be fitted."""
    line = pd.DataFrame(curve.get("line") or [])
    points = pd.DataFrame(curve.get("points") or [])
    if line.empty or points.empty:
        return None
    total = curve["images"]
    line["part"] = ["measured range" if n <= total else "projection" for n in line["images"]]
    projections = pd.DataFrame(curve.get("projections") or [])
    projections["label"] = [f"{m}× the images" for m in projections["multiple"]]
    x = alt.X(
        "images:Q", title="training images (log scale)", scale=alt.Scale(type="log", nice=False)
    )
    accuracy = alt.Axis(format="%")
    band = (
        alt.Chart(line)
        .mark_area(opacity=0.18)
        .encode(x=x, y=alt.Y("low:Q", title="validation accuracy", axis=accuracy), y2="high:Q")
    )
    fitted = (
        alt.Chart(line)
        .mark_line()
        .encode(
            x=x,
            y="accuracy:Q",
            strokeDash=alt.StrokeDash("part:N", legend=alt.Legend(orient="bottom", title=None)),
            tooltip=[
                alt.Tooltip("images:Q", format=",.0f"),
                alt.Tooltip("accuracy:Q", format=PERCENT),
            ],
        )
    )
    measured = (
        alt.Chart(points)
        .mark_circle(size=50, opacity=0.8)
        .encode(
            x=x,
            y="accuracy:Q",
            tooltip=["images", "seed", alt.Tooltip("accuracy:Q", format=PERCENT)],
        )
    )
    ahead = alt.Chart(projections).encode(
        x=x,
        tooltip=[
            "label",
            alt.Tooltip("accuracy:Q", format=PERCENT),
            alt.Tooltip("low:Q", format=PERCENT),
            alt.Tooltip("high:Q", format=PERCENT),
        ],
    )
    now = alt.Chart(pd.DataFrame({"images": [total]})).mark_rule(strokeDash=[2, 2]).encode(x=x)
    return (
        band
        + fitted
        + measured
        + ahead.mark_rule(strokeWidth=2).encode(y="low:Q", y2="high:Q")
        + ahead.mark_point(shape="diamond", size=90, filled=True).encode(y="accuracy:Q")
        + now
    ).properties(title=f"head on frozen features; band: 90%; dotted rule: the {total} images used")


def show_learning_curve(
    curve: Mapping[str, Any], settings: Mapping[str, Any] | None = None, source: str = ""
) -> None:
    """The verdict with its numbers, the chart, and what to do."""
    st.markdown(f"**{summary_line(curve)}**" + (f" ({source})" if source else ""))
    chart = curve_chart(curve)
    if chart is not None:
        st.altair_chart(chart, width="stretch")
    st.caption(advice(curve, settings))


def run_curve(run: Run) -> dict[str, Any] | None:
    """A run's stored curve (a search's summary holds one), or None."""
    curve = (run.summary or {}).get("learning_curve")
    return curve if isinstance(curve, dict) else None


def show_run_curve(s: RunStore, run: Run) -> None:
    """Results: the run's learning curve, or how to get one."""
    st.subheader(TITLE)
    curve = run_curve(run)
    if curve is None:
        st.caption(
            "Every search draws its learning curve here (a train run has none): launch a search "
            f"on this data, or run `{COMMAND}` in a terminal."
        )
        return
    show_learning_curve(curve, run.config, source=f"backbone {curve.get('backbone', '–')}")


def latest_curve(s: RunStore, root: Path) -> tuple[dict[str, Any] | None, Run | None]:
    """The newest completed run on the dataset at ``root`` that holds a learning curve."""
    for run in s.list_runs(status="completed"):
        if Path(run.dataset) == Path(root) and run_curve(run) is not None:
            return run_curve(run), run
    return None, None


def show_dataset_curve(s: RunStore, root: Path) -> None:
    """Datasets: the last curve computed for this dataset, or how to compute one."""
    st.subheader(TITLE)
    curve, run = latest_curve(s, root)
    if curve is None or run is None:
        st.caption(
            f"No learning curve for this dataset yet: every search computes one (Launch), or "
            f"run `{COMMAND}`."
        )
        return
    show_learning_curve(
        curve, run.config, source=f"run {run.id}, backbone {curve.get('backbone', '–')}"
    )
