"""Babysitter's web app: an ``st.navigation`` router over one thin view per page (``views/``).

The app reads ``$BABYSITTER_HOME`` through ``training.runs`` and starts work only through the CLI,
as detached jobs (``training.jobs``); it never trains in-process and imports no Keras at start,
so the server's health endpoint is up in seconds. Start it with ``streamlit run
app/streamlit_app.py`` from the project folder.
"""

from __future__ import annotations

import sys
from pathlib import Path

# `streamlit run app/streamlit_app.py` puts app/ on the import path, not the project folder.
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

VIEWS = Path(__file__).resolve().parent / "views"
PAGES = {
    "Data": [
        ("runs.py", "Runs", ":material/list:"),
        ("datasets.py", "Datasets", ":material/photo_library:"),
    ],
    "Train": [
        ("launch.py", "Launch", ":material/rocket_launch:"),
        ("monitor.py", "Monitor", ":material/monitoring:"),
        ("command_center.py", "Command center", ":material/tune:"),
        ("results.py", "Results", ":material/insights:"),
    ],
    "Use": [
        ("predict.py", "Predict", ":material/image_search:"),
        ("architecture.py", "Architecture", ":material/account_tree:"),
    ],
}


def main() -> None:
    st.set_page_config(page_title="Babysitter", layout="wide")
    pages = {
        section: [st.Page(VIEWS / file, title=title, icon=icon) for file, title, icon in items]
        for section, items in PAGES.items()
    }
    st.navigation(pages).run()


main()
