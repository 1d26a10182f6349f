"""The suite states its case count, and this checks the statement."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.hostile.conftest import CASES_KEY, HERE

STATED_CASES = 296
"""Collected cases besides this one; the 8 unwritable-home cases skip when run as root."""


def _partial(config: pytest.Config, files: set[str]) -> str:
    """Why this run's collection is not the whole suite ("" when it is)."""
    missing = sorted({p.name for p in HERE.glob("test_*.py")} - files)
    if missing:
        return f"{len(missing)} of its files not collected ({', '.join(missing)})"
    picked = [
        arg
        for arg in config.args
        if "::" in arg
        and Path(config.invocation_params.dir, arg.partition("::")[0]).resolve().parent
        == HERE.resolve()
    ]
    return f"cases picked by node id ({', '.join(picked)})" if picked else ""


def test_the_suite_has_the_cases_it_states(request):
    counted, files = request.config.stash[CASES_KEY]
    partial = _partial(request.config, files)
    if partial:
        pytest.skip(f"a partial run of tests/hostile, {partial}: run the folder to check the count")
    assert counted == STATED_CASES + 1, f"update STATED_CASES to {counted - 1}"
