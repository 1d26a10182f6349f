"""What each ``python -m training`` command does; argument parsing lives in ``training.cli.parser``,
which finds each command here by name (``COMMANDS``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from training.cli.console import emit_json, print_result, to_stderr
from training.config import TrainConfig
from training.fields import from_args
from training.store import RunStore
from training.store.report import format_run, format_run_list, run_to_dict

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {}


def command(name: str):
    def register(func):
        COMMANDS[name] = func
        return func

    return register


@command("audit")
def audit(args: argparse.Namespace) -> int:
    from training.data.audit_text import format_audit
    from training.fit.prepare import audit_path

    store = RunStore()
    report = audit_path(
        args.data, store.datasets_dir(), progress=not args.json, cache_dir=store.cache_dir()
    )
    if args.json:
        emit_json(report.to_dict())
    else:
        print(format_audit(report))
    return 0 if report.verdict.trainable else 2


@command("backbones")
def backbones(args: argparse.Namespace) -> int:
    from training.model.backbones import format_backbones, list_backbones

    specs = list_backbones()
    if args.json:
        emit_json([spec.to_dict() for spec in specs])
    else:
        print(format_backbones(specs))
    return 0


@command("inspect")
def inspect(args: argparse.Namespace) -> int:
    from training.model.architecture import format_architecture, inspect_architecture

    report = inspect_architecture(args.backbone, args.image_size, include_top=args.include_top)
    if args.json:
        payload = report.to_dict()
        payload["training_memory"] = report.training_memory(args.batch_size)
        emit_json(payload)
    else:
        print(format_architecture(report, batch_size=args.batch_size))
    return 0


@command("train")
def train(args: argparse.Namespace) -> int:
    from training.babysit.calibration import calibration_line
    from training.babysit.diagnosis import format_diagnosis, reconcile
    from training.babysit.findings import format_findings
    from training.errors import TrainingDiverged
    from training.fit.class_weights import class_lines
    from training.fit.lr_auto_lines import auto_lines
    from training.fit.two_phase import train as run_training

    config = _checked_before_a_run(from_args(TrainConfig, args))
    echo = to_stderr if args.json else print
    try:
        result = run_training(config, verbose=0 if args.json else 1, echo=echo)
    except TrainingDiverged as stopped:
        _, diagnosis = reconcile(stopped.findings, config.to_dict())
        if args.json:
            emit_json(
                {
                    "run_id": stopped.run_id,
                    "status": "failed",
                    "error": str(stopped),
                    "diagnosis": diagnosis,
                    "findings": stopped.findings,
                }
            )
        else:
            print(format_findings(stopped.findings))
            print("\n" + format_diagnosis(diagnosis))
        raise
    if args.json:
        emit_json({"run_id": result.run_id, **result.summary, "findings": result.findings})
    else:
        print_result(result.run_id, result.summary)
        for line in auto_lines(result.summary) + class_lines(result.summary):
            print(f"  {line}")
        if line := calibration_line(result.summary):
            print(f"  {line}")
        print(format_findings(result.findings))
        if result.summary.get("diagnosis"):
            print("\n" + format_diagnosis(result.summary["diagnosis"]))
    return 0


def _checked_before_a_run(config: TrainConfig) -> TrainConfig:
    """What can be refused before a run exists, so that a refusal records nothing: flag bounds
    that depend on the backbone, and whether a ``--weights`` file loads into it (which builds
    the backbone once: seconds, where a refusal after the data is cached leaves a failed run)."""
    from training.fit.prepare import resolve_model_config

    spec, image_size = resolve_model_config(config)
    config.check_unfreeze(len(spec.blocks))
    if config.weights not in ("imagenet", "none"):
        import keras

        from training.model.weights_file import check_weights_file

        check_weights_file(Path(config.weights).expanduser(), spec, image_size)
        keras.utils.clear_session()  # the run's layers are named as if nothing was built before
    return config


@command("check")
def check(args: argparse.Namespace) -> int:
    from training.babysit.diagnosis import format_diagnosis
    from training.babysit.findings import format_findings
    from training.gate import run_gate

    result = run_gate(
        _checked_before_a_run(from_args(TrainConfig, args)),
        verbose=0 if args.json else 1,
        echo=to_stderr if args.json else print,
    )
    if args.json:
        emit_json(
            {
                "run_id": result.run_id,
                "status": result.status,
                "seconds": result.seconds,
                "diagnosis": result.diagnosis,
                "findings": result.findings,
            }
        )
    else:
        print()
        print(format_findings(result.findings, title=f"Sanity gate, run {result.run_id}"))
        if result.diagnosis:
            print("\n" + format_diagnosis(result.diagnosis))
        print(f"\nGate {result.status} in {result.seconds:.0f} s.")
    return 1 if result.status == "fail" else 0


@command("runs")
def runs(args: argparse.Namespace) -> int:
    if args.action == "repair":
        return _repair(args)
    store = RunStore()
    if args.action == "report" and args.run:
        return _report(store, args)
    if args.action == "list":
        found = store.list_runs()
        if args.json:
            emit_json([run_to_dict(run) for run in found])
        else:
            print(format_run_list(found))
        return 0
    if not args.run:
        print(
            f"error: `runs {args.action}` needs a run id (see `python -m training runs list`).",
            file=sys.stderr,
        )
        return 2
    run = store.get_run(args.run)
    epochs, findings = store.epochs(run.id), store.findings(run.id)
    if args.json:
        emit_json(run_to_dict(run, epochs, findings))
    else:
        print(format_run(run, epochs, findings))
    return 0


def _report(store: RunStore, args: argparse.Namespace) -> int:
    from training.model_card import model_card, write_card

    card = model_card(store, args.run)
    path = write_card(card, args.output) if args.output else None
    if args.json:
        emit_json({"run_id": store.get_run(args.run).id, "path": path and str(path), "card": card})
    elif path:
        print(f"Model card written to {path}")
    else:
        print(card, end="")
    return 0


def _repair(args: argparse.Namespace) -> int:
    from training.store.repair import repair

    report = repair()
    if args.json:
        emit_json(report.to_dict())
        return 0
    if report.state == "healthy":
        print(f"The run index {report.index} is healthy.")
    else:
        print(f"The run index {report.index} was {report.state}.")
    for path in report.kept:
        print(f"  kept the damaged file as {path}")
    print(f"Indexed {len(report.rebuilt)} run(s) from their folders.")
    for line in report.skipped:
        print(f"  skipped {line}")
    return 1 if report.skipped else 0


@command("predict")
def predict(args: argparse.Namespace) -> int:
    from training.predict import check_top_k, load_model_file, predict_files, resolve_model_path

    check_top_k(args.top_k)  # before loading a model for nothing
    model = load_model_file(resolve_model_path(args.model))
    results = predict_files(model, args.images, top_k=args.top_k, tta=args.tta)
    if args.json:
        emit_json(results)
    else:
        views = next((r["views"] for r in results if "views" in r), None)
        if views:
            print(f"Test-time augmentation: the mean over {len(views)} views ({', '.join(views)}).")
        for result in results:
            if "error" in result:
                print(f"{result['file']}: error: {result['error']}")
                continue
            ranked = ", ".join(
                f"{p['class']} {p['probability']:.1%}" for p in result["predictions"]
            )
            print(f"{result['file']}: {ranked}")
    return 1 if any("error" in r for r in results) else 0


@command("export")
def export(args: argparse.Namespace) -> int:
    from training.export import export_model

    path = export_model(
        args.run, args.format, Path(args.output) if args.output else None, force=args.force
    )
    if args.json:
        emit_json({"format": args.format, "path": str(path)})
    else:
        print(f"Exported {args.format}: {path}")
    return 0


@command("explain")
def explain(args: argparse.Namespace) -> int:
    from training.explain import explain_command

    return explain_command(args)


@command("learning-curve")
def learning_curve(args: argparse.Namespace) -> int:
    from training.cli.learning_curve import report_curve

    return report_curve(_checked_before_a_run(from_args(TrainConfig, args)), args.json)


@command("demo")
def demo(args: argparse.Namespace) -> int:
    from training.cli.demo import run_demo

    return run_demo(backbone=args.backbone, as_json=args.json)
