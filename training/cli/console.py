"""What both CLIs (``python -m training`` and ``python -m tuner``) share: running a command with
one plain message for a user's error and one JSON document for ``--json``.

Errors a user can cause print as ``error: …`` (no traceback) and exit with their code; Ctrl-C
says how to resume and exits 130. With ``--json``, everything a command or a library prints
(Keras' "Downloading data from …", progress) goes to stderr, and :func:`emit_json` writes the one
document to the real stdout, so stdout stays parseable.

Importing this module, which both CLIs do before anything imports TensorFlow, keeps TensorFlow's
start-up chatter out of the user's terminal (a variable a user set is left alone).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "2")

from training.errors import BabysitterError

_json_stream = None


def run_command(
    command: Callable[[], int], as_json: bool, resume_hint: str = "run the same command again"
) -> int:
    """Run ``command`` the way a CLI must: an exit code, never a traceback for a user's error."""
    global _json_stream
    _json_stream = sys.stdout
    quiet = contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext()
    try:
        with quiet:
            return command()
    except BabysitterError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print(f"\ninterrupted: {resume_hint} to resume.", file=sys.stderr)
        return 130


def emit_json(payload: object) -> None:
    """Print one JSON document on the real stdout (see :func:`run_command`)."""
    stream = _json_stream or sys.stdout
    print(json.dumps(payload, indent=2, default=str), file=stream, flush=True)


def to_stderr(message: str) -> None:
    """Progress and notes under ``--json``: for the person, not for the script reading stdout."""
    print(message, file=sys.stderr)


def print_result(run_id: str, summary: dict) -> None:
    """The few numbers a user wants after a run, and where it is."""
    print()
    print(f"Run {run_id} completed in {summary.get('seconds', 0):.0f} s.")
    for split in ("train", "val", "test"):
        if split in summary:
            scores = summary[split]
            print(
                f"  {split:<5} accuracy {scores['accuracy']:.1%}  loss {scores['loss']:.4f}  "
                f"({scores['images']} images)"
            )
    if "gap" in summary:
        print(f"  gap (train - val accuracy, inference mode): {summary['gap']:+.1%}")
    print(f"  model: {summary['model']}")
