"""A command prints its own output only: TensorFlow's start-up lines never reach the terminal.

TensorFlow's C++ writes a few lines to file descriptor 2 while ``import tensorflow`` runs ("All
log messages before absl::InitializeLog() …", "Could not find cuda drivers …", CPU-instruction
and oneDNN notices), before any log-level variable is read. ``training.cli.console``, which both
CLIs import first, catches them during that one import and passes every other line on.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.cli_process import ROOT

NOISE = (
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
    "I0000 00:00:1796670486.150816    9213 cudart_stub.cc:31] Could not find cuda drivers on your"
    " machine, GPU will not be used.\n"
    "I0000 00:00:1796670486.210161    9213 port.cc:153] oneDNN custom operations are on.\n"
)


def run(args: list[str], **env: str) -> subprocess.CompletedProcess:
    """``args`` under Python from the checkout, with the user's usual TensorFlow setting."""
    environment = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env={**environment, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_backbones_json_prints_only_json():
    done = run(["-m", "training", "backbones", "--json"])
    assert done.returncode == 0 and done.stderr == ""
    assert "ResNet50" in {spec["name"] for spec in json.loads(done.stdout)}


def test_importing_tensorflow_after_the_console_prints_nothing():
    """The real TensorFlow, imported through Keras as every training command does."""
    code = "import training.cli.console, keras; print(keras.ops.ones(2).shape)"
    done = run(["-c", code])
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert done.stdout.strip() == "(2,)"


# What the first use of a device writes on a machine without a GPU driver.
CUINIT = (
    "E0000 00:00:1796671435.434477   31527 cuda_platform.cc:52] failed call to cuInit: INTERNAL:"
    " CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)\n"
)


def fake_tensorflow(folder: Path, body: str) -> Path:
    """A ``tensorflow`` package that writes to file descriptor 2 as the C++ does, then runs
    ``body``: the console's catch, without waiting for the real import. Listing its devices
    writes the cuInit line."""
    package = folder / "tensorflow"
    package.mkdir()
    (package / "__init__.py").write_text(
        f"import os, types\nos.write(2, {NOISE.encode()!r})\n{body}\n"
        "config = types.SimpleNamespace(\n"
        f"    list_physical_devices=lambda: os.write(2, {CUINIT.encode()!r})\n"
        ")\n",
        encoding="utf-8",
    )
    return folder


def test_start_up_lines_are_dropped_and_every_other_line_shows(tmp_path):
    folder = fake_tensorflow(tmp_path, "os.write(2, b'W a warning of the dataset\\n')")
    code = (
        f"import sys; sys.path.insert(0, {str(folder)!r})\n"
        "import training.cli.console, tensorflow, os\n"
        "assert tensorflow.__spec__.loader is tensorflow.__loader__\n"
        "assert type(tensorflow.__loader__).__name__ == 'SourceFileLoader'\n"
        "os.write(2, b'after the import\\n')\n"  # fd 2 is the terminal again
    )
    done = run(["-c", code])
    assert done.returncode == 0, done.stderr
    assert done.stderr == "W a warning of the dataset\nafter the import\n"


def test_an_import_that_fails_shows_everything_it_wrote(tmp_path):
    folder = fake_tensorflow(tmp_path, "raise ImportError('libcudart.so.12: cannot open')")
    code = (
        f"import sys; sys.path.insert(0, {str(folder)!r})\nimport training.cli.console, tensorflow"
    )
    done = run(["-c", code])
    assert done.returncode == 1
    assert done.stderr.startswith(NOISE)
    assert "ImportError: libcudart.so.12: cannot open" in done.stderr


def test_a_reader_that_leaves_early_gets_no_traceback():
    """``babysitter backbones --json | head -c 1``: the reader is gone; the command
    stops quietly (exit 141, as Unix tools do) instead of printing a BrokenPipeError."""
    env = {**os.environ, "KERAS_BACKEND": "tensorflow"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "training", "backbones", "--json"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    proc.stdout.close()  # gone before the command writes (it starts in about a second)
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) in (0, 141)
    assert "Traceback" not in err and "BrokenPipe" not in err, err
