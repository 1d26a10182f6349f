"""``python -m training`` as a separate process, the way a user, the app or Docker starts it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def cli_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "training", *args]


def cli_env(home: Path) -> dict[str, str]:
    """This environment, with its own run store and the checkout importable."""
    return {**os.environ, "BABYSITTER_HOME": str(home), "PYTHONPATH": str(ROOT)}


def run_cli(*args: str, home: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        cli_command(*args),
        capture_output=True,
        text=True,
        env=cli_env(home),
        cwd=ROOT,
        timeout=timeout,
    )


def run_python(code: str) -> subprocess.CompletedProcess:
    """``python -c code`` in the project folder, in a fresh interpreter (what is imported at
    start, and what is missing, is then the code's own)."""
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
