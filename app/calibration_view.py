"""Results' calibration panel: how far to trust a probability the model gives.

Draws the run's reliability diagram (per confidence bin, how often the model was right against
how sure it was; on the diagonal means "90% sure" is right 90% of the time) before and after
the temperature ``train`` fitted, with the expected calibration error of each. Everything comes
from the run's summary (``training.babysit.calibration``); nothing is recomputed here. The
chart is a pure function, testable without a Streamlit session.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from app.analysis import percent
from app.charts import PERCENT

SERIES = {"before": "raw (T = 1)", "after": "calibrated"}
"""How the chart names the two curves (the summary's ``before`` and ``after`` bins)."""


def reliability_frame(calibration: Mapping[str, Any], temperature: float = 1.0) -> pd.DataFrame:
    """One row per non-empty bin and curve: confidence, accuracy, images, the bin's edges."""
    rows = []
    for key, name in SERIES.items():
        series = name if key == "before" else f"{name} (T = {temperature:.3g})"
        for b in calibration.get(key) or []:
            if b.get("count"):
                rows.append({"series": series, **b})
    columns = ["series", "low", "high", "count", "confidence", "accuracy"]
    return pd.DataFrame(rows, columns=columns)


def reliability_chart(calibration: Mapping[str, Any], temperature: float = 1.0) -> alt.Chart:
    """Accuracy against mean confidence per bin, dots sized by images, the diagonal dashed."""
    frame = reliability_frame(calibration, temperature)
    axis = {"scale": alt.Scale(domain=[0, 1]), "axis": alt.Axis(format="%")}
    diagonal = (
        alt.Chart(pd.DataFrame({"x": [0.0, 1.0], "y": [0.0, 1.0]}))
        .mark_line(strokeDash=[4, 3], color="gray")
        .encode(x="x:Q", y="y:Q")
    )
    curves = (
        alt.Chart(frame)
        .mark_line(point=True)
        .encode(
            x=alt.X("confidence:Q", title="confidence (top class, mean per bin)", **axis),
            y=alt.Y("accuracy:Q", title="accuracy in the bin", **axis),
            color=alt.Color("series:N", legend=alt.Legend(orient="bottom", labelLimit=400)),
            size=alt.Size("count:Q", title="images"),
            tooltip=[
                "series",
                alt.Tooltip("low:Q", format=PERCENT, title="bin from"),
                alt.Tooltip("high:Q", format=PERCENT, title="bin to"),
                "count",
                alt.Tooltip("confidence:Q", format=PERCENT),
                alt.Tooltip("accuracy:Q", format=PERCENT),
            ],
        )
    )
    return (diagonal + curves).properties(
        title="on the dashed line, x% sure is right x% of the time"
    )


def show_calibration(summary: Mapping[str, Any]) -> None:
    """The panel on Results: the ECE before and after, the temperature, the diagram; a run
    from before calibration existed shows nothing, a skipped one says why."""
    calibration = summary.get("calibration")
    if not isinstance(calibration, Mapping):
        return
    st.subheader("Calibration: how far to trust a probability")
    images = calibration.get("images", 0)
    status = calibration.get("status")
    if status != "calibrated":
        measured = summary.get("ece_before")
        error = f"Expected calibration error {percent(measured)} on {images} validation images. "
        st.info(
            (error if measured is not None else "")
            + f"Calibration {status}: {calibration.get('reason', '')}. "
            "The model gives its raw probabilities."
        )
    else:
        a, b, c = st.columns(3)
        help_ece = (
            f"Expected calibration error on {images} validation images, {calibration.get('bins')}"
            " confidence bins: the average gap between how sure the model is and how often it "
            "is right (0% is perfect)."
        )
        a.metric("ECE before", percent(summary.get("ece_before")), help=help_ece)
        b.metric("ECE after", percent(summary.get("ece_after")), help=help_ece)
        c.metric(
            "Temperature",
            f"{summary.get('temperature', 1.0):.3g}",
            help="The logits are divided by it before the softmax, inside the saved model: "
            "above 1 softens over-confident probabilities. The predicted class never changes.",
        )
        test = calibration.get("test")
        if test:
            st.caption(
                f"On {test['images']} test images, which the temperature was not fitted on: "
                f"{percent(test['ece_before'])} → {percent(test['ece_after'])}."
            )
    if calibration.get("before"):
        st.altair_chart(
            reliability_chart(calibration, summary.get("temperature", 1.0)), width="stretch"
        )
