"""What both CLIs (``python -m training`` and ``python -m tuner``) share: running a command with
one plain message for a user's error and one JSON document for ``--json``.

Errors a user can cause print as ``error: …`` (no traceback) and exit with their code; Ctrl-C
says how to resume and exits 130. With ``--json``, everything a command or a library prints
(Keras' "Downloading data from …", progress) goes to stderr, and :func:`emit_json` writes the one
document to the real stdout, so stdout stays parseable.

Importing this module, which both CLIs do before anything imports TensorFlow, keeps TensorFlow's
start-up chatter out of the user's terminal: the log-level variables are set (a value a user set
is left alone), and the lines C++ writes before absl reads them ("All log messages before
absl::InitializeLog() …", "Could not find cuda drivers …", CPU-instruction and oneDNN notices),
which no variable reaches, are caught while ``tensorflow`` is imported and its devices listed (see
:class:`_QuietImport`). ``TF_ENABLE_ONEDNN_OPTS`` is left alone: 0 would turn TensorFlow's oneDNN
kernels off, not only their notice, which is caught with the rest.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from types import ModuleType

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "2")

from training.errors import BabysitterError
from training.job_log import is_noise

_json_stream = None


@contextlib.contextmanager
def _stderr_captured() -> Iterator[list[str]]:
    """File descriptor 2 into a temporary file for the block (C++ writes there directly), put
    back afterwards whatever happens; the list yielded then holds the lines written."""
    sys.stderr.flush()
    lines: list[str] = []
    saved = os.dup(2)
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        try:
            yield lines
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            text = caught.read().decode("utf-8", errors="replace")
            lines += text.splitlines(keepends=True)


class _QuietImport:
    """A finder for one module (``tensorflow``) whose import, then ``finish(module)``, run with
    stderr caught: the known start-up lines (``training.job_log.is_noise``, the job log's filter)
    are dropped and every other line is written to stderr afterwards; an import that fails shows
    everything it wrote. It hands the import back to the normal finders after the first use."""

    def __init__(self, name: str, finish: Callable[[ModuleType], object]) -> None:
        self.name = name
        self.finish = finish
        self.loader = None

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> object:
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        self.loader, spec.loader = spec.loader, self
        return spec

    def create_module(self, spec: object) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        failed, lines = True, []
        try:
            with _stderr_captured() as lines:
                try:
                    self.loader.exec_module(module)
                finally:
                    module.__loader__ = module.__spec__.loader = self.loader
                self.finish(module)
                failed = False
        finally:
            kept = [line for line in lines if failed or not is_noise(line.rstrip("\r\n"))]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


def _start_devices(tensorflow: ModuleType) -> None:
    """TensorFlow starts its CUDA platform on first use, which on a machine without a GPU driver
    writes "failed call to cuInit" from C++; listing the devices starts it now, while the lines
    are caught. It creates no device context, so memory growth and visible devices can still be
    set afterwards."""
    tensorflow.config.list_physical_devices()


if "tensorflow" not in sys.modules:
    sys.meta_path.insert(0, _QuietImport("tensorflow", _start_devices))


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
    except BrokenPipeError:  # the reader left (`… | head`): stop quietly, as Unix tools do
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # Python's flush at exit then has nowhere to fail
        return 141


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
