"""``python -m training …``: the one way work is started, by a person, a script, the app or Docker.

Errors a user can cause print as one plain message (no traceback) and exit non-zero; ``--json``
prints one JSON document on stdout for scripts, with progress on stderr. Keras is imported only
by the commands that need it, so ``audit`` and ``runs`` start in a fraction of a second.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

# console first: it quiets TensorFlow before anything can import it.
from training.cli.console import run_command  # isort: skip
from training.cli.commands import COMMANDS
from training.config import TrainConfig
from training.fields import add_arguments


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m training",
        description="Babysitter: fine-tune pretrained Keras backbones on your images.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("audit", help="check a dataset: counts, unreadable files, duplicates")
    p.add_argument("data")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("backbones", help="list every backbone in the registry")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("inspect", help="per-layer shapes, memory, parameters and FLOPs")
    p.add_argument("backbone")
    p.add_argument("--image-size", type=int, default=None)
    p.add_argument("--include-top", action="store_true")
    p.add_argument("--batch-size", type=int, default=32, help="for the training-memory estimate")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("train", help="audit, split, decode once, fine-tune in two phases")
    add_arguments(p, TrainConfig)
    p.add_argument("--json", action="store_true")

    p = sub.add_parser(
        "check", help="sanity gate: initial loss, L2, overfit a tiny subset, lr range test"
    )
    add_arguments(p, TrainConfig)
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("runs", help="list runs, show one, or repair the run index")
    p.add_argument("action", nargs="?", default="list", choices=["list", "show", "repair"])
    p.add_argument("run", nargs="?")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("predict", help="classify image files with a run's model or a .keras file")
    p.add_argument("model", metavar="MODEL_OR_RUN")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--top-k", type=int, default=3)
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("export", help="export a run's model")
    p.add_argument("run", metavar="RUN_OR_MODEL")
    p.add_argument("--format", default="keras", choices=["keras", "savedmodel", "tflite"])
    p.add_argument(
        "--output",
        default=None,
        help="a .keras or .tflite file, or a folder for savedmodel (default: the run's export/)",
    )
    p.add_argument(
        "--force", action="store_true", help="replace an earlier export of the same format there"
    )
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("demo", help="generate the demo dataset, audit it, fine-tune, report")
    p.add_argument("--backbone", default=None, help="default: the demo's small backbone")
    p.add_argument("--json", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(lambda: COMMANDS[args.command](args), getattr(args, "json", False))
