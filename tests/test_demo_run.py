"""The README's first command, as a user runs it (offline here, so random initial weights)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli_process import run_cli


@pytest.mark.slow
def test_demo_trains_and_says_what_next(babysitter_home):
    result = run_cli("demo", "--json", home=babysitter_home, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout)
    assert Path(summary["model"]).exists()
    assert summary["classes"] == ["circles", "crosses", "squares", "stripes"]
    if summary["weights"] == "none":
        assert "RANDOM initial weights" in result.stderr
    # Four shape classes: chance is 25%; even from random weights the demo must learn.
    assert summary["val"]["accuracy"] >= 0.4
