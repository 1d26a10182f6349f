"""Helpers every hostile case uses: the CLIs in-process, and snapshots of folders."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import pytest

from training.cli import main as training_main
from tuner.cli import main as tuner_main

HERE = Path(__file__).parent


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Count this suite's cases before ``-k``/``-m`` deselect any (see test_count.py)."""
    ours = [i for i in items if Path(str(i.path)).parent == HERE]
    config.stash[CASES_KEY] = (len(ours), {Path(str(i.path)).name for i in ours})


CASES_KEY = pytest.StashKey[tuple]()


@dataclass
class Outcome:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys):
    """Run ``python -m training`` (or ``tool="tuner"``) in-process; never a traceback."""

    def run(*argv: str, tool: str = "training") -> Outcome:
        main = training_main if tool == "training" else tuner_main
        try:
            code = main([str(a) for a in argv])
        except SystemExit as exit_:  # argparse refusing a flag: usage and the error, exit 2
            code = exit_.code
        captured = capsys.readouterr()
        assert "Traceback" not in captured.err + captured.out
        return Outcome(code, captured.out, captured.err)

    return run


def snapshot(folder: Path) -> dict[str, str]:
    """Every path under ``folder`` with a digest of its bytes (folders, links, pipes marked)."""
    shot = {}
    if not folder.exists():
        return shot
    for path in sorted(folder.rglob("*")):
        key = str(path.relative_to(folder))
        if path.is_symlink():
            shot[key] = "link->" + str(path.readlink())
        elif path.is_dir():
            shot[key] = "dir"
        elif path.is_file():
            shot[key] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:  # a pipe or a device: reading it could block forever
            shot[key] = "special"
    return shot
