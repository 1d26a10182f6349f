"""Altair charts the pages draw: pure functions from plain data to ``alt.Chart``.

Kept apart from the views so they are testable without a Streamlit session, and so every page
draws a curve, a count or a range the same way.
"""

from __future__ import annotations

import math
from typing import Any

import altair as alt
import pandas as pd

PERCENT = ".1%"
"""d3 format of every percentage (the app's one format, as ``app.analysis.percent``)."""
SIG3 = ".3~g"
"""d3 format of hyperparameter values: 3 significant digits."""


def counts_chart(counts: dict[str, dict[str, int]]) -> alt.Chart:
    """Images per class, one bar colour per split (the audit's ``counts``)."""
    rows = [
        {"split": split, "class": name, "images": n}
        for split, per_class in counts.items()
        for name, n in per_class.items()
    ]
    return (
        alt.Chart(pd.DataFrame(rows, columns=["split", "class", "images"]))
        .mark_bar()
        .encode(
            x=alt.X("class:N", title="class"),
            y=alt.Y("images:Q", title="images"),
            color=alt.Color("split:N"),
            xOffset="split:N",
            tooltip=["split", "class", "images"],
        )
    )


def epoch_frame(epochs: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per epoch with a running ``step`` across phases (head then fine-tune)."""
    rows = []
    for step, e in enumerate(epochs, 1):
        rows.append(
            {
                "step": step,
                "phase": e.get("phase", ""),
                "epoch": e.get("epoch", step),
                "loss": _finite(e.get("loss")),
                "val_loss": _finite(e.get("val_loss")),
                "accuracy": _finite(e.get("accuracy")),
                "val_accuracy": _finite(e.get("val_accuracy")),
            }
        )
    frame = pd.DataFrame(
        rows,
        columns=["step", "phase", "epoch", "loss", "val_loss", "accuracy", "val_accuracy"],
    )
    frame["gap"] = frame["accuracy"] - frame["val_accuracy"]
    return frame


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


FIT_MODE = "during training (dropout and augmentation on)"
"""How a chart names the per-epoch training curve: Keras logs it in fit mode, so it is not the
inference-mode training accuracy the run's gap is computed from."""


def curves_chart(epochs: list[dict[str, Any]], metric: str) -> alt.Chart:
    """Train and validation ``metric`` (``loss`` or ``accuracy``) over all epochs; the training
    series is named as what it is, the fit-mode value logged during training."""
    accuracy = metric == "accuracy"
    shown = PERCENT if accuracy else ".4f"
    frame = epoch_frame(epochs)
    long = frame.melt(
        id_vars=["step", "phase", "epoch"],
        value_vars=[metric, f"val_{metric}"],
        var_name="series",
        value_name="value",
    ).dropna(subset=["value"])
    long["series"] = long["series"].map({metric: f"train {FIT_MODE}", f"val_{metric}": "val"})
    return (
        alt.Chart(long)
        .mark_line(point=True)
        .encode(
            x=alt.X(
                "step:Q",
                title="epoch (head, then fine-tune)",
                axis=alt.Axis(format="d", tickMinStep=1),
            ),
            y=alt.Y("value:Q", title=metric, axis=alt.Axis(format="%" if accuracy else "~g")),
            color=alt.Color("series:N", legend=alt.Legend(orient="bottom", labelLimit=400)),
            strokeDash=alt.StrokeDash("phase:N"),
            tooltip=["phase", "epoch", "series", alt.Tooltip("value:Q", format=shown)],
        )
    )


def gap_chart(epochs: list[dict[str, Any]], final_gap: float | None = None) -> alt.Chart:
    """Train minus validation accuracy per epoch, as logged during training (fit mode): a
    growing gap is overfitting. ``final_gap``, the run's gap in inference mode (the one number
    every page states), is drawn after the last epoch as its own marked point."""
    frame = epoch_frame(epochs).dropna(subset=["gap"])
    frame["step"] = frame["step"].astype(str)
    frame["measured"] = FIT_MODE
    bars = (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            x=alt.X("step:N", title="epoch", sort=None),
            y=alt.Y("gap:Q", title="train − val accuracy", axis=alt.Axis(format="%")),
            color=alt.Color("phase:N"),
            tooltip=["phase", "epoch", "measured", alt.Tooltip("gap:Q", format="+" + PERCENT)],
        )
    )
    chart = bars + alt.Chart(pd.DataFrame({"y": [0.0]})).mark_rule().encode(y="y:Q")
    if final_gap is None or not math.isfinite(final_gap):
        return chart.properties(title=f"per epoch: {FIT_MODE}")
    point = pd.DataFrame(
        {"step": [FINAL_STEP], "gap": [final_gap], "measured": ["after training, inference mode"]}
    )
    final = (
        alt.Chart(point)
        .mark_point(shape="diamond", size=160, filled=True, color="black")
        .encode(
            x=alt.X("step:N", sort=None),
            y="gap:Q",
            tooltip=["measured", alt.Tooltip("gap:Q", format="+" + PERCENT)],
        )
    )
    title = f"bars: {FIT_MODE}; ◆ {FINAL_STEP}: the run's gap (inference mode)"
    return (chart + final).properties(title=title)


FINAL_STEP = "final"
"""The gap chart's last x position: the inference-mode gap after training."""


def hyperparameter_chart(
    points: pd.DataFrame, ranges: list[dict[str, Any]], name: str, log: bool, numeric: bool
) -> alt.Chart:
    """Validation accuracy against one hyperparameter, coloured by stage, failed trials marked.

    Args:
        points: columns ``value``, ``score`` (failed trials: 0, plotted as crosses), ``stage``,
            ``status``, ``trial_id``.
        ranges: ``{"stage", "low", "high"}`` per stage for numeric ranges: drawn as shaded
            rectangles with rules at their edges.
        log: Log x-axis (the range is sampled in log space, per ``tuner.space``).
        numeric: False for choices (a categorical axis, no ranges).
    """
    points = points.assign(stage=points["stage"].astype(str))
    if numeric:
        x = alt.X(
            "value:Q",
            title=name,
            scale=alt.Scale(type="log") if log else alt.Scale(zero=False),
        )
    else:
        x = alt.X("value:N", title=name)
    dots = (
        alt.Chart(points)
        .mark_point(filled=True, size=80)
        .encode(
            x=x,
            y=alt.Y(
                "score:Q",
                title="val accuracy",
                scale=alt.Scale(domain=[0, 1]),
                axis=alt.Axis(format="%"),
            ),
            color=alt.Color("stage:N", title="stage"),
            shape=alt.Shape(
                "status:N",
                scale=alt.Scale(
                    domain=["completed", "failed", "invalid"], range=["circle", "cross", "triangle"]
                ),
            ),
            tooltip=[
                "trial_id",
                "stage",
                "status",
                alt.Tooltip("value:Q", format=SIG3) if numeric else "value",
                alt.Tooltip("score:Q", format=PERCENT),
            ],
        )
    )
    if not numeric or not ranges:
        return dots
    frame = pd.DataFrame(ranges).assign(stage=lambda f: f["stage"].astype(str))
    rects = (
        alt.Chart(frame)
        .mark_rect(opacity=0.08)
        .encode(x="low:Q", x2="high:Q", color=alt.Color("stage:N"))
    )
    edges = frame.melt(id_vars=["stage"], value_vars=["low", "high"], value_name="edge")
    rules = (
        alt.Chart(edges)
        .mark_rule(strokeDash=[4, 3])
        .encode(
            x="edge:Q",
            color=alt.Color("stage:N"),
            tooltip=["stage", "variable", alt.Tooltip("edge:Q", format=SIG3)],
        )
    )
    return rects + rules + dots


def confusion_chart(
    matrix: Any, class_names: list[str], selected: tuple[int, int] | None = None
) -> alt.Chart:
    """A heatmap of counts: rows true class, columns predicted class; the ``selected`` cell
    (true, predicted), whose images the page lists below, is outlined."""
    rows = [
        {"true": t, "predicted": p, "count": int(matrix[i][j]), "selected": (i, j) == selected}
        for i, t in enumerate(class_names)
        for j, p in enumerate(class_names)
    ]
    frame = pd.DataFrame(rows)
    base = alt.Chart(frame).encode(
        x=alt.X("predicted:N", sort=class_names), y=alt.Y("true:N", sort=class_names)
    )
    heat = base.mark_rect().encode(
        color=alt.Color("count:Q", scale=alt.Scale(scheme="blues")),
        tooltip=["true", "predicted", "count"],
    )
    text = base.mark_text().encode(text="count:Q")
    outline = base.transform_filter(alt.datum.selected).mark_rect(
        filled=False, stroke="orange", strokeWidth=3
    )
    return heat + text + outline


def layers_chart(rows: list[dict[str, Any]], field: str, title: str) -> alt.Chart:
    """One bar per layer, in model order (memory goes early, parameters late: the VGG lesson)."""
    frame = pd.DataFrame(
        [
            {"index": i, "layer": r["name"], "type": r["type"], field: r[field]}
            for i, r in enumerate(rows)
        ]
    )
    return (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            x=alt.X(
                "index:O", title="layer (model order)", axis=alt.Axis(labels=False, ticks=False)
            ),
            y=alt.Y(f"{field}:Q", title=title),
            tooltip=["layer", "type", alt.Tooltip(f"{field}:Q", format=",")],
        )
    )


def probabilities_chart(predictions: list[dict[str, Any]]) -> alt.Chart:
    """Top-k classes of one image as horizontal bars."""
    frame = pd.DataFrame(predictions)
    order = list(frame["class"]) if len(frame) else []
    return (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            x=alt.X("probability:Q", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%")),
            y=alt.Y("class:N", sort=order),
            tooltip=["class", alt.Tooltip("probability:Q", format=PERCENT)],
        )
    )
