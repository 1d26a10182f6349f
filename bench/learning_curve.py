"""Would more data help: how far the learning curve's projection lands from what more data gave.

    KERAS_BACKEND=tensorflow python3 -m bench.learning_curve DATA --backbone MobileNetV2 \\
        --weights weights/mobilenetv2-96.weights.h5 --size 96 [--repeats 5] [--json-out F]

DATA is a class-folder dataset (a ``train/`` + ``val/`` layout keeps its split), ``demo:N`` (N
procedural demo images) or ``synthetic:N`` (N generated feature sets, no backbone).

On a dataset, the frozen backbone's features are computed once through Babysitter's own data
half and feature pass (``training.more_data.split_features``, in a scratch home). Each repeat
holds out a stratified half of the training images, runs the learning curve on the other half
exactly as ``learning-curve`` does (10/25/50/100% of it, 3 seeds, the inverse power law), and
compares its projection at 2× with the validation accuracy the same head actually reaches
with all the training images. The validation images are the same throughout.

``synthetic:N`` checks the band and the verdict where the truth is known: Gaussian classes
(2–5 classes, 8–256 dimensions, separations from chance to easy, 15–300 images a class), the
truth being the mean over fresh training sets of each size. It reports the projection's error
against one fresh set twice as large (what a user would see), how often the 90% bands hold the
truth, and every verdict that was wrong: "rising" where doubling truly adds under 0.3 points,
"flat" where it adds over 1.5.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
from pathlib import Path

import numpy as np

from bench.common import emit_report, work_folder
from training.babysit.learning_curve import head_accuracy, learning_curve, stratified_rows


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.learning_curve", description=__doc__)
    parser.add_argument("data", help="a dataset folder, demo:N or synthetic:N")
    parser.add_argument("--backbone", default="MobileNetV2")
    parser.add_argument("--weights", default="none", help="a weights file, imagenet or none")
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--repeats", type=int, default=5, help="held-out halves drawn")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", default=None, help="keep the scratch folder here")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--json-out", default=None)
    return parser.parse_args(argv)


def dataset_features(args, work: Path):
    """(train x, train y, val x, val y, class names) of DATA through Babysitter's pipeline."""
    from bench.search import source_dataset
    from training.config import TrainConfig
    from training.more_data import split_features
    from training.store import RunStore

    source = source_dataset(args.data, args.size, work)
    config = TrainConfig(
        data=str(source),
        backbone=args.backbone,
        weights=args.weights,
        image_size=args.size,
        seed=args.seed,
    )
    store = RunStore(work / "home")
    data, features = split_features(config, store, lambda m: print(m, file=sys.stderr), 0)
    return (
        features["train"],
        data.labels("train"),
        features["val"],
        data.labels("val"),
        data.class_names,
    )


def held_out_half(train_x, train_y, val_x, val_y, repeat: int) -> dict:
    """The curve on a stratified half; its 2× projection against all the images."""
    rows, _ = stratified_rows(train_y, 0.5, np.random.default_rng([repeat, 50]))
    curve = learning_curve(
        train_x[rows], train_y[rows], val_x, val_y, seed=repeat, chance_gate=False
    )
    actual = head_accuracy(train_x, train_y, val_x, val_y)
    out = {
        "repeat": repeat,
        "half_images": len(rows),
        "all_images": len(train_y),
        "half_accuracy": curve.get("accuracy"),
        "all_accuracy": round(actual, 4),
        "verdict": curve["verdict"],
        "reason": curve.get("reason"),
        "chance_band": curve.get("chance_band"),
    }
    if curve["projections"]:
        p = curve["projections"][0]
        out.update(
            projected=p["accuracy"],
            band=[p["low"], p["high"]],
            error=round(p["accuracy"] - actual, 4),
            inside=p["low"] <= actual <= p["high"],
            gain=p["gain"],
            gain_band=[p["gain_low"], p["gain_high"]],
            actual_gain=round(actual - curve["accuracy"], 4),
        )
    return out


def dataset_report(args, work: Path) -> dict:
    train_x, train_y, val_x, val_y, names = dataset_features(args, work)
    repeats = [held_out_half(train_x, train_y, val_x, val_y, r) for r in range(args.repeats)]
    scored = [r for r in repeats if "error" in r]
    errors = np.array([r["error"] for r in scored]) if scored else np.zeros(0)
    full = learning_curve(train_x, train_y, val_x, val_y, seed=args.seed, chance_gate=False)
    return {
        "classes": names,
        "images": {"train": len(train_y), "val": len(val_y)},
        "repeats": repeats,
        "summary": {
            "fitted": len(scored),
            "mean_error": round(float(errors.mean()), 4) if scored else None,
            "mean_abs_error": round(float(np.abs(errors).mean()), 4) if scored else None,
            "inside_band": sum(bool(r["inside"]) for r in scored),
            "verdicts": [r["verdict"] for r in repeats],
        },
        "all_images_curve": {
            k: full[k] for k in ("accuracy", "verdict", "reason", "projections", "fit", "points")
        },
    }


def synthetic_report(count: int, seed: int) -> dict:
    """``count`` generated feature sets: projection error, band coverage, wrong verdicts."""
    rng = np.random.default_rng(seed)
    rows = []
    for trial in range(count):
        classes = int(rng.choice([2, 3, 5]))
        dims = int(rng.choice([8, 32, 128, 256]))
        separation = float(rng.choice([0.05, 0.1, 0.2, 0.4, 0.8])) * 3 * (8 / dims) ** 0.5
        per_class, val_per_class = int(rng.choice([15, 40, 100, 300])), int(rng.choice([30, 100]))
        draw_rng = np.random.default_rng([seed, trial])
        means = draw_rng.normal(0, separation, (classes, dims))

        def draw(n, means=means, draw_rng=draw_rng):
            labels = np.repeat(np.arange(len(means)), n)
            noise = draw_rng.normal(size=(len(labels), means.shape[1]))
            return (means[labels] + noise).astype(np.float32), labels

        val = draw(val_per_class)
        doubled = draw(2 * per_class)
        half, _ = stratified_rows(doubled[1], 0.5, draw_rng)
        curve = learning_curve(doubled[0][half], doubled[1][half], *val, seed=trial)
        one_set = head_accuracy(*doubled, *val)
        truth = np.mean([head_accuracy(*draw(2 * per_class), *val) for _ in range(8)]) - np.mean(
            [head_accuracy(*draw(per_class), *val) for _ in range(8)]
        )
        row = {"classes": classes, "dims": dims, "per_class": per_class, "verdict": None}
        row.update(verdict=curve["verdict"], true_gain=round(float(truth), 4))
        if curve["projections"]:
            p = curve["projections"][0]
            row.update(
                error=p["accuracy"] - one_set,
                inside=p["low"] <= one_set <= p["high"],
                gain_inside=p["gain_low"] <= truth <= p["gain_high"],
            )
        rows.append(row)
        print(f"synthetic {trial + 1}/{count}: {row}", file=sys.stderr)
    fitted = [r for r in rows if "error" in r]
    errors = np.array([r["error"] for r in fitted])
    wrong = [
        r
        for r in rows
        if (r["verdict"] == "rising" and r["true_gain"] < 0.003)
        or (r["verdict"] == "flat" and r["true_gain"] > 0.015)
    ]
    return {
        "scenarios": count,
        "fitted": len(fitted),
        "mean_error": round(float(errors.mean()), 4),
        "mean_abs_error": round(float(np.abs(errors).mean()), 4),
        "projection_band_holds_one_set": round(float(np.mean([r["inside"] for r in fitted])), 3),
        "gain_band_holds_truth": round(float(np.mean([r["gain_inside"] for r in fitted])), 3),
        "verdicts": {v: sum(r["verdict"] == v for r in rows) for v in VERDICTS},
        "wrong_verdicts": wrong,
        "rows": rows,
    }


VERDICTS = ("rising", "flat", "unclear", "unreadable")


def print_dataset(report: dict, out) -> None:
    images = report["images"]
    print(f"{report['data']}: {images['train']} training, {images['val']} validation", file=out)
    print(
        "repeat  half  acc(half)  projected 2x (90% band)   all   acc(all)  error  verdict",
        file=out,
    )
    for r in report["repeats"]:
        if "error" not in r:
            print(
                f"{r['repeat']:>6}  {r['half_images']:>4}  {r['verdict']}: {r['reason']}", file=out
            )
            continue
        print(
            f"{r['repeat']:>6}  {r['half_images']:>4}  {r['half_accuracy']:>9.1%}  "
            f"{r['projected']:>8.1%} ({r['band'][0]:.1%}–{r['band'][1]:.1%})  "
            f"{r['all_images']:>5}  {r['all_accuracy']:>8.1%}  {r['error']:+.1%}  {r['verdict']}",
            file=out,
        )
    s = report["summary"]
    if s["fitted"]:
        print(
            f"mean error {s['mean_error']:+.1%}, mean |error| {s['mean_abs_error']:.1%}, "
            f"inside the band {s['inside_band']}/{s['fitted']}",
            file=out,
        )
    full = report["all_images_curve"]
    said = [r["reason"] for r in report["repeats"] if r["reason"]]
    if said:
        print(f"the finding on {len(said)} halves: cannot read the curve, e.g. {said[0]}", file=out)
    if full["reason"]:
        print(f"the finding on all images: cannot read the curve: {full['reason']}", file=out)
    print(
        f"all images: {full['verdict']}, "
        + ", ".join(
            f"{p['multiple']}x {p['accuracy']:.1%} ({p['low']:.1%}–{p['high']:.1%})"
            for p in full["projections"]
        ),
        file=out,
    )


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    report = {
        "benchmark": "bench/learning_curve.py",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "backend": os.environ.get("KERAS_BACKEND", "tensorflow"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "data": args.data,
    }
    out = sys.stderr if args.json else sys.stdout
    if args.data.startswith("synthetic:"):
        report["synthetic"] = synthetic_report(int(args.data.split(":", 1)[1]), args.seed)
        summary = {k: v for k, v in report["synthetic"].items() if k != "rows"}
        print(summary, file=out)
    else:
        report.update(backbone=args.backbone, weights=args.weights, size=args.size)
        with work_folder(args.workdir, "bench_learning_curve_") as work:
            report.update(dataset_report(args, work))
        print_dataset(report, out)
    emit_report(report, args.json, args.json_out)


if __name__ == "__main__":
    main()
