"""``python -m training …``: the one way work is started, by a person, a script, the app or Docker.

Errors a user can cause print as one plain message (no traceback) and exit non-zero; ``--json``
prints one JSON document on stdout for scripts, with progress on stderr. Keras is imported only
by the commands that need it, so ``audit`` and ``runs`` start in a fraction of a second.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

# console first: it quiets TensorFlow before anything can import it.
from training.cli.console import run_command  # isort: skip
from training import __version__
from training.cli.commands import COMMANDS
from training.config import TrainConfig
from training.fields import add_arguments


def _audit(p: argparse.ArgumentParser) -> None:
    p.add_argument("data")


def _backbones(p: argparse.ArgumentParser) -> None:
    pass


def _inspect(p: argparse.ArgumentParser) -> None:
    p.add_argument("backbone")
    p.add_argument("--image-size", type=int, default=None)
    p.add_argument("--include-top", action="store_true")
    p.add_argument("--batch-size", type=int, default=32, help="for the training-memory estimate")


def _train_config(p: argparse.ArgumentParser) -> None:
    add_arguments(p, TrainConfig)


def _runs(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "action", nargs="?", default="list", choices=["list", "show", "report", "repair"]
    )
    p.add_argument("run", nargs="?")
    p.add_argument("--output", default=None, help="report: write the model card to this .md file")


def _predict(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="MODEL_OR_RUN")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--top-k", type=int, default=3)
    p.add_argument(
        "--tta",
        action="store_true",
        help="test-time augmentation: average over each image and its mirror (and the "
        "rotations and zoom the run trained with)",
    )


def _export(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", metavar="RUN_OR_MODEL")
    p.add_argument("--format", default="keras", choices=["keras", "savedmodel", "tflite", "onnx"])
    p.add_argument(
        "--output",
        default=None,
        help="a .keras, .tflite or .onnx file, or a folder for savedmodel (default: the run's "
        "export/)",
    )
    p.add_argument(
        "--force", action="store_true", help="replace an earlier export of the same format there"
    )


def _explain(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="RUN_OR_MODEL")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument(
        "--out", default=None, help="folder for the overlays (default: the run's explain/)"
    )


def _demo(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backbone", default=None, help="default: the demo's small backbone")


SUBCOMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None]]] = {
    "audit": ("check a dataset: counts, unreadable files, duplicates", _audit),
    "backbones": ("list every backbone in the registry", _backbones),
    "inspect": ("per-layer shapes, memory, parameters and FLOPs", _inspect),
    "train": ("audit, split, decode once, fine-tune in two phases", _train_config),
    "check": ("sanity gate: initial loss, L2, overfit a tiny subset, lr range test", _train_config),
    "learning-curve": ("would more data help: the head's learning curve, 2x and 4x", _train_config),
    "runs": ("list runs, show one, its model card (report), or repair the index", _runs),
    "predict": ("classify image files with a run's model or a .keras file", _predict),
    "export": ("export a run's model", _export),
    "explain": ("heatmap of where the model looked, per image (Grad-CAM)", _explain),
    "demo": ("generate the demo dataset, audit it, fine-tune, report", _demo),
}
"""Each command: its one-line help and the function that adds its arguments (every command takes
``--json`` too). ``babysitter --help`` lists the commands from here."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m training",
        description="Babysitter: fine-tune pretrained Keras backbones on your images.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_text, add_arguments_to) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text)
        add_arguments_to(p)
        p.add_argument("--json", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(lambda: COMMANDS[args.command](args), getattr(args, "json", False))
