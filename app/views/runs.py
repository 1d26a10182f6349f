"""Runs: every run and job in the store, newest first."""

from __future__ import annotations

import streamlit as st

from app.common import store
from training import jobs
from training.runs import shown_status

st.title("Runs")
s = store()
runs = s.list_runs()
st.caption(f"Run store: `{s.home}` ({len(runs)} runs)")
if not runs:
    st.info("No runs yet. Add a dataset, then start a search on the Launch page.")
else:
    st.dataframe(
        [
            {
                "id": r.id,
                "kind": r.kind,
                "backbone": str(
                    r.config.get("backbone") or ",".join(r.config.get("backbones", []))
                ),
                "status": shown_status(r),
                "val accuracy": (r.summary or {}).get("val", {}).get("accuracy"),
                "created": r.created_at[:19].replace("T", " "),
                "dataset": r.dataset,
            }
            for r in runs
        ],
        hide_index=True,
        column_config={"val accuracy": st.column_config.NumberColumn(format="percent")},
    )
found = jobs.refresh(s)
if found:
    st.subheader("Jobs")
    st.dataframe(
        [
            {
                "job": j.id,
                "kind": j.kind,
                "status": j.status,
                "exit code": j.exit_code,
                "run": j.run_id,
                "started": j.created_at[:19].replace("T", " "),
                "command": j.command_line,
            }
            for j in found
        ],
        hide_index=True,
    )
