"""``python -m tuner search …``: the staged search, from a terminal, the app or Docker."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "2")

from training.console import run_command
from tuner.commands import run_search


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tuner",
        description="Babysitter: coarse-to-fine Keras Tuner search over two-phase fine-tuning.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("search", help="search hyperparameters, then fine-tune the best")
    p.add_argument("data", help="folder of class subfolders, train/val splits, or a .zip")
    p.add_argument("--backbone", required=True, help="one name or several, comma-separated")
    p.add_argument("--weights", default="imagenet", help="imagenet | none | PATH")
    p.add_argument("--image-size", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--trials", type=int, default=20, help="head trials over all stages")
    p.add_argument("--stages", type=int, default=2, help="coarse-to-fine stages")
    p.add_argument("--epochs-head", type=int, default=10, help="epochs of each head trial")
    p.add_argument("--epochs-finetune", type=int, default=3, help="phase 2 epochs of the top K")
    p.add_argument(
        "--top-k",
        type=int,
        default=2,
        help="configurations fine-tuned in full (0: a head search only, no model)",
    )
    p.add_argument("--tuner", default="random", choices=["random", "hyperband", "bayesian"])
    p.add_argument(
        "--space",
        action="append",
        default=[],
        metavar="NAME=LOW:HIGH|A,B",
        help="override a range, e.g. lr=1e-4:1e-2 or optimizer=adam,sgd (repeatable)",
    )
    p.add_argument("--val-split", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--precision", default="auto")
    p.add_argument("--jit", default="auto")
    p.add_argument(
        "--devices",
        default="auto",
        help="data-parallel fine-tuning of the top K over N devices (JAX); auto: every GPU",
    )
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
