# ruff: noqa: F811 (the store fixture, imported from test_app_monitor, is a parameter here)
"""The app closes the loop: one gap per run on every page, a finding's change one click from the
next run (which records where it came from), findings titled with their phase, root cause first.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from app.apply import apply_finding, space_item
from tests.apptest import follow_run, page
from tests.test_app_monitor import epochs, search_run, store, texts, train_run  # noqa: F401
from training import jobs
from training.store import RunStore

SUMMARY = {
    "train": {"accuracy": 0.531, "loss": 0.7, "images": 100},
    "val": {"accuracy": 0.545, "loss": 0.69, "images": 40},
    "gap": 0.531 - 0.545,
}
L2_DOWN = {"op": "lower", "param": "l2", "from": 0.0603, "to": 0.00603}


def finished(store: RunStore, findings: list[dict], **config) -> str:
    """A completed train run whose fit-mode curves end at +10 points of gap while its
    inference-mode gap is -1.4 points (the issue's two numbers of opposite sign)."""
    run = train_run(store, status="running", **config)
    epochs(store, run.id, {"head": 2, "finetune": 2})
    store.add_findings(run.id, findings)
    store.set_status(run.id, "completed", summary=SUMMARY)
    return run.id


def gap_finding(**changes) -> dict:
    return {
        "check": "generalization_gap",
        "status": "warn",
        "measured": 0.2,
        "expected": 0.1,
        "advice": "Lower --l2 to 0.00603.",
        "action": L2_DOWN,
        **changes,
    }


def test_monitor_and_results_state_the_same_inference_mode_gap(store):
    run_id = finished(store, [])
    monitor, results = follow_run(run_id), page("results", run_id=run_id)
    line = "**Accuracy gap (train − val)** · -1.4% (train 53.1%, val 54.5%; inference mode)"
    assert line in [m.value for m in monitor.markdown]
    assert line in [m.value for m in results.markdown]
    assert "+10" not in texts(monitor)  # the fit-mode curve's last gap is not stated as the gap


def test_the_gap_chart_names_fit_mode_and_marks_the_final_gap():
    from app.charts import FIT_MODE, gap_chart

    rows = [{"phase": "head", "epoch": 1, "accuracy": 0.6, "val_accuracy": 0.5}]
    spec = gap_chart(rows, -0.014).to_dict()
    assert FIT_MODE in spec["title"] and "inference mode" in spec["title"]
    marks = [layer["mark"]["type"] for layer in spec["layer"]]
    assert marks == ["bar", "rule", "point"]


def test_a_train_finding_applies_as_the_same_run_with_one_change(store, monkeypatch):
    run_id = finished(store, [gap_finding()], l2=0.0603)
    started: list[list[str]] = []

    def start(s, args):
        started.append(args)
        return SimpleNamespace(id=7)

    monkeypatch.setattr(jobs, "start_job", start)
    at = page("results", run_id=run_id)
    button = next(b for b in at.button if b.key.startswith("apply-"))
    assert button.label == "Train again with L2 0.00603"
    shown = [c.value for c in at.code]
    assert any("--l2 0.00603" in c and f"--origin {run_id}:generalization_gap" in c for c in shown)
    button.click().run()
    assert len(started) == 1
    args = started[0]
    assert args[:2] == ["training", "train"] and args[args.index("--l2") + 1] == "0.00603"
    assert args[args.index("--origin") + 1] == f"{run_id}:generalization_gap"
    assert at.session_state["follow_job"] == 7


def test_the_applied_run_and_its_source_name_each_other(store):
    source = finished(store, [gap_finding()], l2=0.0603)
    child = finished(store, [], l2=0.00603, origin=f"{source}:generalization_gap")
    body = texts(page("results", run_id=child))
    assert f"From run `{source}`, finding **generalization_gap**." in body
    assert f"Applied in run `{child}` (finding **generalization_gap**)." in texts(
        page("results", run_id=source)
    )


def test_a_search_finding_moves_the_searched_range_around_the_proposal(store):
    search = search_run(store)
    config = store.get_run(search.id).config
    finding = gap_finding(action={"op": "raise", "param": "head_units", "from": 512, "to": 1024})
    applied = apply_finding("search", config, search.id, finding, {"head_units": 512})
    assert applied.args[:2] == ["tuner", "search"]
    assert applied.args[applied.args.index("--space") + 1] == "head_units=512,1024,2048"
    assert applied.change == "Head units: search 512, 1024, 2048"
    assert applied.button == "Search again with this change"
    assert "--origin" in applied.args


@pytest.mark.parametrize(
    ("param", "to", "item"),
    [
        ("l2", 0.01, "l2=0.00316:0.0316"),  # one decade around a log-scale value
        ("dropout", 0.4, "dropout=0.312:0.488"),  # a quarter of the default 0..0.7
        ("unfreeze", 1, "unfreeze=1:2"),  # never below one block
        ("l2", [1e-3, 1.0], "l2=0.001:1"),  # a range the finding names is searched as it is
        ("optimizer", "sgd", "optimizer=sgd"),
    ],
)
def test_space_items_stay_inside_the_search_limits(param, to, item):
    assert space_item(param, to) == item


def test_no_button_for_a_change_in_use_or_a_file_to_choose(store):
    run_id = finished(store, [], l2=0.00603)
    config = store.get_run(run_id).config
    assert apply_finding("train", config, run_id, gap_finding()) is None
    pick_file = gap_finding(action={"op": "set", "param": "weights", "to": "PATH"})
    assert apply_finding("train", config, run_id, pick_file) is None


def test_findings_name_their_phase(store):
    flat = {"check": "loss_flat", "measured": 0.0, "expected": 0.01, "advice": ""}
    findings = [
        {**flat, "status": "ok", "evidence": {"phase": "head"}},
        {**flat, "status": "warn", "evidence": {"phase": "finetune"}},
        {"check": "val_at_chance", "status": "fail", "measured": 0.5, "expected": 0.6},
    ]
    at = follow_run(finished(store, findings))
    titles = [
        e.value.split("**")[1]
        for kind in ("error", "warning", "success")
        for e in at.get(kind)
        if e.value.startswith("**")
    ]
    assert {"Head: loss flat", "Fine-tune: loss flat", "Val at chance"} <= set(titles)


def test_the_root_cause_leads_and_the_findings_it_explains_follow_the_problems():
    from app.common import ordered

    explained = {"check": "loss_curve", "status": "ok", "evidence": {"explained_by": "x"}}
    findings = [
        {"check": "lr_range", "status": "ok"},
        explained,
        {"check": "underfitting", "status": "warn"},
        {"check": "label_noise", "status": "warn"},
        {"check": "val_at_chance", "status": "fail"},
    ]
    shown = [f["check"] for f in ordered(findings, {"check": "label_noise"})]
    assert shown == ["label_noise", "val_at_chance", "underfitting", "loss_curve", "lr_range"]
