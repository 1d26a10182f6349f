"""Babysitter's web app: an ``st.navigation`` router over one thin view per page (``views/``).

The app reads ``$BABYSITTER_HOME`` through ``training.store`` and starts work only through the CLI,
as detached jobs (``training.jobs``); it never trains in-process and imports no Keras at start,
so the server's health endpoint is up in seconds. Start it with ``babysitter app`` once installed
(``pip install ".[app]"``), or ``python -m streamlit run app/streamlit_app.py`` from the project
folder: ``python -m`` puts the working folder on the import path, so ``training`` is found
there. Its Streamlit settings are ``.streamlit/config.toml`` beside this file.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

VIEWS = Path(__file__).resolve().parent / "views"
PAGES = {
    "": [("home.py", "Home", ":material/home:")],  # the default page: the first one
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
