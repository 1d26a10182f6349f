"""``babysitter``: the one command that ``pip install .`` puts on the PATH.

It only dispatches, so that each command keeps the one parser it has: ``search`` goes to the
tuner's CLI, ``app`` to ``streamlit run`` on the app, every other command to the training CLI.
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

from training.cli import parser as training_cli
from tuner import cli as tuner_cli

APP_HELP = "the web app; streamlit run's options pass through (e.g. --server.port 8502)"


def subcommands(parser: argparse.ArgumentParser) -> dict[str, str]:
    """Each subcommand of a CLI with its help, read from that CLI's parser (written once, there)."""
    (action,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {choice.dest: choice.help for choice in action._choices_actions}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="babysitter",
        description="Babysitter: fine-tune pretrained Keras backbones on your images.",
        epilog="`babysitter COMMAND --help` shows a command's options.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands = {
        **subcommands(training_cli.build_parser()),
        **subcommands(tuner_cli.build_parser()),
        "app": APP_HELP,
    }
    for name, help_text in commands.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def run_app(args: Sequence[str]) -> int:
    """``streamlit run`` on the app's script, in this process, so that the app imports
    ``training`` from where this command did; Streamlit reads the app's settings from
    ``.streamlit/config.toml`` beside the script. Click exits with Streamlit's status."""
    from streamlit.web.cli import main as streamlit_main

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
