"""Command center: a search's trials against each hyperparameter, stage ranges, edge warnings."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app.analysis import PERCENT_FORMAT, finding_settings, percent, search_progress, trial_rows
from app.charts import hyperparameter_chart
from app.common import pick_run, store, warn_unreadable
from training.babysit.advice import in_app_words
from training.store.trials import stages, trials
from tuner.space import spec

st.title("Command center")
s = store()
warn_unreadable(s)
run = pick_run(s.list_runs(kind="search"), key="cc_run", label="Search run")
if run is None:
    st.info("No search runs yet: start one on the Launch page.")
    st.stop()

found = trials(s, run.id)
planned = stages(s, run.id)
p = search_progress(s, run.id)
c1, c2, c3, c4 = st.columns(4)
c1.metric("Trials", f"{p['done']} / {p['planned']}")
c2.metric("Stage", f"{p['stage']} / {p['stages']}")
c3.metric("Failed", p["failed"])
scores = [t["score"] for t in found if t["score"] is not None]
c4.metric("Best val accuracy", percent(max(scores)) if scores else "–")
if not found:
    st.info("No trials finished yet.")
    st.stop()

edges = [f for f in s.findings(run.id) if f.get("check") == "edge_of_range"]
settings = finding_settings(s, run)
names: list[str] = []
for stage in planned:
    names += [n for n in stage["space"] if n not in names]
for t in found:
    names += [n for n in t["hyperparameters"] if n not in names]

for name in names:
    ranges, log, numeric = [], False, False
    for stage in planned:
        rng = stage["space"].get(name)
        if rng and rng.get("kind") in ("float", "int"):
            numeric = True
            log = log or bool(rng.get("log"))
            ranges.append({"stage": stage["stage"], "low": rng["low"], "high": rng["high"]})
    if not ranges:
        try:
            log = spec(name).log and all(
                isinstance(t["hyperparameters"].get(name), int | float) for t in found
            )
        except Exception:  # an unknown name (a newer tuner): plot it on a linear axis
            log = False
        numeric = all(
            isinstance(t["hyperparameters"].get(name), int | float)
            and not isinstance(t["hyperparameters"].get(name), bool)
            for t in found
        )
    points = pd.DataFrame(
        [
            {
                "trial_id": t["trial_id"],
                "stage": t["stage"],
                "status": t["status"],
                "value": t["hyperparameters"].get(name),
                "score": t["score"] if t["score"] is not None else 0.0,
            }
            for t in found
            if t["hyperparameters"].get(name) is not None
        ]
    )
    if points.empty:
        continue
    if not numeric:
        points["value"] = points["value"].astype(str)
    plot, notes = st.columns([3, 1])
    with plot:
        st.markdown(f"**{name}**" + (" (log scale)" if log else ""))
        st.altair_chart(hyperparameter_chart(points, ranges, name, log, numeric), width="stretch")
    with notes:
        for stage in planned:
            rng = stage["space"].get(name)
            if rng:
                shown = (
                    f"{rng['low']:.3g} … {rng['high']:.3g}"
                    if "low" in rng
                    else ", ".join(map(str, rng.get("choices", [])))
                )
                st.caption(f"stage {stage['stage']}: {shown}")
        for f in edges:
            if (f.get("evidence") or {}).get("hyperparameter") == name:
                advice = in_app_words(f.get("advice") or str(f.get("measured")), settings)
                st.warning(advice, icon=":material/warning:")

st.subheader("Trials")
st.caption("Click a column header to sort.")
st.dataframe(
    trial_rows(found),
    hide_index=True,
    column_config={"val_accuracy": st.column_config.NumberColumn(format=PERCENT_FORMAT)},
)
