"""The app under Streamlit's AppTest, opened on one page with some session state."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from tests.cli_process import ROOT

APP = str(ROOT / "app" / "streamlit_app.py")
TIMEOUT = 120


def page(name: str, **state) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for key, value in state.items():
        at.session_state[key] = value
    at.run()
    if name != "home":  # the page the app opens on
        at.switch_page(f"views/{name}.py")
        at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def follow_run(run_id: str) -> AppTest:
    """Monitor in Run mode on ``run_id``, picked as a user does (while a job runs, Monitor opens
    on the job)."""
    at = page("monitor", run_id=run_id)
    at.radio(key="follow").set_value("Run").run()
    at.selectbox(key="monitor_run").set_value(run_id).run()
    assert not at.exception, [e.value for e in at.exception]
    return at
