# ruff: noqa: F811 (pytest fixtures imported from test_app_launch are parameters here)
"""Launch refuses what cannot train, shows a gate only for the settings it checked (with its
warnings inline), and offers every searched knob as a range the advice can name."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from app.common import remember_folder
from tests.imagegen import make_image_folder
from tests.test_app_launch import (  # noqa: F401 (fixtures)
    APP,
    data,
    launch_page,
    offline,
    search_command,
    small,
    started,
    stored_gate,
)
from training.store import RunStore


def warned_gate(store: RunStore, data) -> str:
    return stored_gate(store, data, "warn", "lr_range", "The loss barely moves.")


def successes(at: AppTest) -> str:
    return "\n".join(e.value for e in at.success)


def test_a_gate_shows_its_warnings_and_hides_once_the_settings_change(data, babysitter_home):
    run_id = warned_gate(RunStore(babysitter_home), data)
    at = small(launch_page())
    assert f"The sanity gate passed with warnings (run {run_id})." in successes(at)
    assert any("**Lr range** — measured 0.55" in m.value for m in at.markdown)
    assert at.button(key=f"gate-open-{run_id}")
    at.number_input(key="image_size").set_value(64).run()
    assert "sanity gate" not in successes(at)  # checked at 32 px, says nothing about 64 px
    assert not [b for b in at.button if b.key == f"gate-open-{run_id}"]


def test_a_gate_of_another_dataset_or_weights_is_not_shown(data, babysitter_home, tmp_path):
    other = make_image_folder(tmp_path / "other", {"a": 10, "b": 10}).resolve()
    warned_gate(RunStore(babysitter_home), other)
    at = small(launch_page())
    assert "sanity gate" not in successes(at)


def test_data_the_audit_refuses_disables_launch_and_check(tmp_path, babysitter_home, started):
    single = make_image_folder(tmp_path / "one", {"cat": 6}).resolve()
    remember_folder(RunStore(babysitter_home), single)
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["dataset"] = str(single)
    at = small(launch_page(at))
    assert any("This dataset cannot be trained" in e.value for e in at.error)
    assert at.button(key="launch").disabled and at.button(key="check").disabled
    assert any("datasets" in str(link.proto) for link in at.get("page_link")), at.get("page_link")
    assert started == []


def test_search_ranges_are_fields_and_become_space_overrides(data, started):
    at = small(launch_page())
    labels = {t.key: t.label for t in at.text_input if t.key.startswith("space_")}
    assert labels["space_l2"] == "L2" and labels["space_head_units"] == "Head units"
    assert labels["space_unfreeze"] == "Unfreeze blocks" and len(labels) == 9
    assert at.text_input(key="space_l2").value == "1e-06:0.1"
    assert "--space" not in search_command(at)  # defaults are not written
    at.text_input(key="space_l2").set_value("1e-4:1e-2").run()
    assert "--space l2=1e-4:1e-2" in search_command(at)
    at.text_input(key="space_l2").set_value("lots").run()
    assert any(e.value.startswith("L2: ") for e in at.error)
    assert at.button(key="launch").disabled
