"""``python -m tuner search …``: the staged search, from a terminal, the app or Docker."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from training.cli.console import run_command
from training.fields import add_arguments
from tuner.commands import run_search
from tuner.config import SearchConfig


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tuner",
        description="Babysitter: coarse-to-fine Keras Tuner search over two-phase fine-tuning.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("search", help="search hyperparameters, then fine-tune the best")
    add_arguments(p, SearchConfig)
    p.add_argument("--resume", action="store_true", help="continue an interrupted search")
    p.add_argument(
        "--distributed",
        choices=["chief", "worker"],
        default=None,
        help="Keras Tuner chief/worker mode (KERASTUNER_ORACLE_IP/PORT, KERASTUNER_TUNER_ID)",
    )
    p.add_argument("--json", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(lambda: run_search(args), args.json, "run it again with --resume")
