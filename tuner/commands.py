"""What ``python -m tuner search`` does once its arguments are parsed."""

from __future__ import annotations

import argparse
import os
import shlex

from training.cli.console import emit_json, to_stderr
from training.errors import ConfigError
from training.fields import from_args

KT_ENV = ("KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT")


def configure_distribution(role: str | None) -> None:
    """Keras Tuner reads its mode from the environment: set it from ``--distributed`` only."""
    if role is None:
        for name in KT_ENV:
            os.environ.pop(name, None)
        return
    missing = [
        n for n in ("KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT") if not os.environ.get(n)
    ]
    if missing:
        raise ConfigError(
            f"--distributed {role} needs {' and '.join(missing)} set (the chief's address, e.g. "
            "KERASTUNER_ORACLE_IP=127.0.0.1 KERASTUNER_ORACLE_PORT=8000)."
        )
    if role == "chief":
        os.environ["KERASTUNER_TUNER_ID"] = "chief"
    elif os.environ.get("KERASTUNER_TUNER_ID", "chief") == "chief":
        raise ConfigError(
            "--distributed worker needs a unique KERASTUNER_TUNER_ID per worker (e.g. tuner0)."
        )


def run_search(args: argparse.Namespace) -> int:
    from training.babysit.calibration import calibration_line
    from training.babysit.diagnosis import format_diagnosis
    from training.babysit.findings import format_findings
    from tuner.config import SearchConfig
    from tuner.search import search

    configure_distribution(args.distributed)
    config = from_args(SearchConfig, args)
    echo = to_stderr if args.json else print
    result = search(
        config, resume=args.resume, role=args.distributed, verbose=0 if args.json else 1, echo=echo
    )
    if result is None:
        echo("Worker finished: the chief has recorded every trial.")
        return 0
    if args.json:
        emit_json({"run_id": result.run_id, **result.summary, "findings": result.findings})
        return 0
    s = result.summary
    print()
    print(f"Search {result.run_id} completed.")
    if s["best_run"]:
        print(f"  best trial {s['best_trial']} (fine-tuned as run {s['best_run']})")
    else:
        print(
            f"  best trial {s['best_trial']}: head val accuracy {s['head_val_accuracy']:.1%} "
            "(--top-k 0: no model trained)"
        )
    print("  hyperparameters: " + ", ".join(f"{k}={v}" for k, v in s["hyperparameters"].items()))
    for split in ("train", "val", "test"):
        if split in s:
            print(f"  {split:<5} accuracy {s[split]['accuracy']:.1%}")
    if line := calibration_line(s):
        print(f"  {line}")
    t = s["trials"]
    print(
        f"  trials: {t['completed']} completed, {t['failed']} failed, "
        f"{t['head_seconds_mean']:.2f} s per head trial"
    )
    if s["model"]:
        print(f"  model: {s['model']}")
    else:
        print(f"  to train it: {train_command(args, s)}")
    print(format_findings(result.findings))
    if s.get("diagnosis"):
        print("\n" + format_diagnosis(s["diagnosis"]))
    return 0


def train_command(args: argparse.Namespace, summary: dict) -> str:
    """The ``train`` command line of a head-only search's best configuration."""
    words = ["python", "-m", "training", "train", args.data, "--backbone", summary["backbone"]]
    if args.weights != "imagenet":
        words += ["--weights", args.weights]
    if args.image_size:
        words += ["--image-size", str(args.image_size)]
    for key, value in summary["hyperparameters"].items():
        if key in ("backbone", "finetune_factor", "unfreeze"):
            continue
        words += [
            f"--{key.replace('_', '-')}",
            f"{value:.3g}" if isinstance(value, float) else str(value),
        ]
    return shlex.join(words)
