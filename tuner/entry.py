"""``babysitter``: the one command that ``pip install .`` puts on the PATH.

It only dispatches, so that each command keeps the one parser it has: ``search`` goes to the
tuner's CLI, ``app`` to ``streamlit run`` on the app (with the ``[app]`` extra installed), every
other command to the training CLI, whose table of commands (``SUBCOMMANDS``) lists them here.
``python -m training`` and ``python -m tuner`` stay the same programs under their own names. It
lives in ``tuner`` because ``tuner`` may import ``training`` and the reverse is not allowed
(``tests/test_imports.py``); it finds the app by location, without importing it.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path

from training import __version__
from training.cli import parser as training_cli
from tuner import cli as tuner_cli

APP_HELP = "the web app; streamlit run's options pass through (e.g. --server.port 8502)"
# tuner/cli.py's one command, said the way its own parser says it.
SEARCH_HELP = "search hyperparameters, then fine-tune the best"
APP_MISSING = (
    "the web app needs Streamlit, which this installation does not have: install it with "
    '`python3 -m pip install "babysitter[app]"` (or `-r requirements.txt` in a checkout).'
)


def commands() -> dict[str, str]:
    """Every command and its help: the training CLI's (its own table), the tuner's, the app."""
    training_commands = {
        name: help_text for name, (help_text, _) in training_cli.SUBCOMMANDS.items()
    }
    return {**training_commands, "search": SEARCH_HELP, "app": APP_HELP}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="babysitter",
        description="Babysitter: fine-tune pretrained Keras backbones on your images.",
        epilog="`babysitter COMMAND --help` shows a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, help_text in commands().items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def run_app(args: Sequence[str]) -> int:
    """``streamlit run`` on the app's script, in this process, so that the app imports
    ``training`` from where this command did; Streamlit reads the app's settings from
    ``.streamlit/config.toml`` beside the script. Click exits with Streamlit's status."""
    try:
        from streamlit.web.cli import main as streamlit_main
    except ModuleNotFoundError as error:
        if (error.name or "").partition(".")[0] != "streamlit":
            raise
        print(f"error: {APP_MISSING}", file=sys.stderr)
        return 2

    script = Path(importlib.util.find_spec("app").origin).with_name("streamlit_app.py")
    return streamlit_main(["run", str(script), *args], prog_name="streamlit")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = build_parser().parse_args(argv[:1]).command
    if command == "app":
        return run_app(argv[1:])
    if command == "search":
        return tuner_cli.main(argv)
    return training_cli.main(argv)
