"""What ``python -m tuner search`` does once its arguments are parsed."""

from __future__ import annotations

import argparse
import sys

from training.cli import emit_json
from tuner.cli import configure_distribution


def run_search(args: argparse.Namespace) -> int:
    from training.babysit.findings import format_findings
    from tuner.config import SearchConfig
    from tuner.search import search

    configure_distribution(args.distributed)
    config = SearchConfig(
        data=args.data,
        backbones=args.backbone,
        weights=args.weights,
        image_size=args.image_size,
        batch_size=args.batch_size,
        trials=args.trials,
        stages=args.stages,
        epochs_head=args.epochs_head,
        epochs_finetune=args.epochs_finetune,
        top_k=args.top_k,
        tuner=args.tuner,
        space=args.space,
        val_split=args.val_split,
        seed=args.seed,
        precision=args.precision,
        jit=args.jit,
        devices=args.devices,
    )
    echo = (lambda m: print(m, file=sys.stderr)) if args.json else print
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
    print(f"  best trial {s['best_trial']} (fine-tuned as run {s['best_run']})")
    print("  hyperparameters: " + ", ".join(f"{k}={v}" for k, v in s["hyperparameters"].items()))
    for split in ("train", "val", "test"):
        if split in s:
            print(f"  {split:<5} accuracy {s[split]['accuracy']:.1%}")
    t = s["trials"]
    print(
        f"  trials: {t['completed']} completed, {t['failed']} failed, "
        f"{t['head_seconds_mean']:.2f} s per head trial"
    )
    print(f"  model: {s['model']}")
    print(format_findings(result.findings))
    return 0
