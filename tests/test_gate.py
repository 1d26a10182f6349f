"""``python -m training check``: the whole sanity gate on real files, in-process and as a CLI."""

from __future__ import annotations

import json

import pytest

from tests.cli_process import run_cli
from tests.imagegen import make_image_folder
from training.babysit.findings import Finding, format_findings, worst_status
from training.config import TrainConfig
from training.gate import run_gate
from training.store import RunStore

GATE = [
    "initial_loss",
    "regularization_raises_loss",
    "overfit_tiny_subset",
    "lr_range",
    "label_noise",
]


@pytest.fixture
def colours(tmp_path):
    return make_image_folder(tmp_path / "colours", {"red": 16, "green": 16, "blue": 16}, size=32)


@pytest.mark.core
def test_the_gate_passes_a_healthy_dataset_and_stores_a_check_run(colours):
    # A head rate inside the window: random VGG16 features put the default 1e-3 below it.
    config = TrainConfig(
        data=str(colours), backbone="VGG16", weights="none", image_size=32, lr=1e-2
    )
    result = run_gate(config, echo=lambda m: None, verbose=0)
    checks = [f["check"] for f in result.findings]
    assert checks[-5:] == GATE  # in CS231n's order, after the audit's findings
    statuses = {f["check"]: f["status"] for f in result.findings}
    assert all(statuses[c] == "ok" for c in GATE), format_findings(result.findings)
    assert statuses["too_few_images"] == "warn"  # 16 images a class: honest, not a failure
    assert result.status == "warn"
    lr_range = result.findings[-2]
    low, high = lr_range["action"]["low"], lr_range["action"]["high"]
    assert 0 < low <= 1e-2 <= high and lr_range["evidence"]["rate"] == 1e-2
    store = RunStore()
    run = store.get_run(result.run_id)
    assert (run.kind, run.status) == ("check", "completed")
    assert [f["check"] for f in store.findings(run.id)] == checks


def test_check_command_gates_on_failure_and_prints_json(tmp_path, babysitter_home):
    root = make_image_folder(
        tmp_path / "leaky",
        splits={"train": {"red": 12, "green": 12}, "val": {"red": 4, "green": 4}},
        size=32,
    )
    leaked = sorted((root / "train" / "red").iterdir())[0]
    (root / "val" / "red" / "copy.png").write_bytes(leaked.read_bytes())
    args = ["check", str(root), "--backbone", "VGG16", "--weights", "none", "--image-size", "32"]
    done = run_cli(*args, "--json", home=babysitter_home)
    assert done.returncode == 1, done.stderr
    payload = json.loads(done.stdout)
    statuses = {f["check"]: f["status"] for f in payload["findings"]}
    assert statuses["leakage"] == "fail"
    assert payload["status"] == "fail"
    text = run_cli(*args, home=babysitter_home)
    assert text.returncode == 1
    assert "[FAIL] leakage" in text.stdout
    assert "lr_range" in text.stdout


def test_findings_report_and_worst_status():
    ok = Finding("a", "ok", 1.0, 1.0, "Nothing to do.")
    warn = Finding("b", "warn", 0.5, "≈ 1", "Raise --lr.", action={"op": "raise"})
    assert worst_status([]) == "ok"
    assert worst_status([ok, warn]) == "warn"
    report = format_findings([ok, warn])
    assert "[WARN] b" in report and "Raise --lr." in report
    assert "Nothing to do" not in report  # ok findings do not repeat their advice
    with pytest.raises(ValueError):
        Finding("c", "bad", 0, 0, "")
