"""``python -m training …``: the one way work is started, by a person, a script, the app or Docker.

Errors a user can cause print as one plain message (no traceback) and exit non-zero; ``--json``
prints one JSON document on stdout for scripts, with progress on stderr. Keras is imported only
by the commands that need it, so ``audit`` and ``runs`` start in a fraction of a second.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

# Before any TensorFlow import: keep its start-up chatter out of the user's terminal.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "2")

from training.commands import COMMANDS
from training.console import run_command


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """Data/model/fit flags shared by ``train`` and ``check``; one per config field."""
    parser.add_argument("data", help="folder of class subfolders, train/val splits, or a .zip")
    parser.add_argument("--backbone", required=True, help="see `python -m training backbones`")
    parser.add_argument("--weights", default="imagenet", help="imagenet | none | PATH")
    parser.add_argument(
        "--image-size", type=int, default=None, help="square input size (default: the backbone's)"
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs-head", type=int, default=10, help="phase 1 epochs (0 skips)")
    parser.add_argument("--epochs-finetune", type=int, default=5, help="phase 2 epochs (0 skips)")
    parser.add_argument(
        "--unfreeze",
        default=None,
        help="top backbone blocks to train in phase 2: N or all "
        "(default 2, or all with --weights none)",
    )
    parser.add_argument("--lr", type=float, default=1e-3, help="phase 1 learning rate")
    parser.add_argument("--finetune-lr", type=float, default=1e-4, help="phase 2 learning rate")
    parser.add_argument("--l2", type=float, default=0.0, help="L2 on the head's kernels")
    parser.add_argument("--dropout", type=float, default=0.2)
    parser.add_argument("--head-units", type=int, default=0, help="hidden head layer (0: none)")
    parser.add_argument("--optimizer", default="adam", choices=["adam", "adamw", "sgd"])
    parser.add_argument(
        "--schedule",
        default="constant",
        choices=["constant", "cosine", "step"],
        help="learning-rate schedule within each phase",
    )
    parser.add_argument("--label-smoothing", type=float, default=0.0)
    parser.add_argument(
        "--no-augment",
        dest="augment",
        action="store_false",
        help="turn off flip/rotation/zoom augmentation in phase 2",
    )
    parser.add_argument("--class-weights", default="none", choices=["none", "balanced"])
    parser.add_argument("--val-split", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--precision",
        default="auto",
        choices=["auto", "float32", "mixed_bfloat16", "mixed_float16"],
    )
    parser.add_argument("--jit", default="auto", choices=["auto", "on", "off"])
    parser.add_argument(
        "--devices",
        default="auto",
        help="data-parallel over N devices (JAX); auto: every GPU when there are several",
    )


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
    add_train_arguments(p)
    p.add_argument("--json", action="store_true")

    p = sub.add_parser(
        "check", help="sanity gate: initial loss, L2, overfit a tiny subset, lr range test"
    )
    add_train_arguments(p)
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
