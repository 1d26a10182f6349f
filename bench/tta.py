"""Does ``predict --tta`` help, and do class weights find a small class? Measured on real runs.

TTA: one ``train`` run (or ``--run`` of an existing home), then its validation images, read back
from the image cache through the rows its stored predictions name, predicted by the saved model
with and without test-time augmentation (``training.tta``): accuracy, per-class recall, and how
many answers the views changed (fixed: wrong → right; broken: right → wrong).

Class weights (``--class-weights``): the demo's four shapes at the backbone's size, one class
kept at 1/``--shrink`` of the others in train/ (val/ balanced, so recall is judged fairly), two
head-only ``train`` runs, ``--class-weights none`` and the default ``auto``, and each class's
recall on validation from their summaries.

    KERAS_BACKEND=tensorflow python -m bench.tta DATA|demo:N [--backbone MobileNetV2]
        [--weights PATH] [--image-size 96] [--epochs-head 10] [--epochs-finetune 2] [--seed 0]
        [--run RUN --home HOME] [--class-weights [--shrink 15]] [--json] [--json-out FILE]
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
from pathlib import Path

from bench.common import emit_report, work_folder


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("data", nargs="?", default="demo:400", help="a dataset, or demo:N")
    p.add_argument("--backbone", default="MobileNetV2")
    p.add_argument("--weights", default="none")
    p.add_argument("--image-size", type=int, default=96)
    p.add_argument("--epochs-head", type=int, default=10)
    p.add_argument("--epochs-finetune", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--run", default=None, help="measure this run instead of training one")
    p.add_argument("--home", default=None, help="the home --run is in")
    p.add_argument("--class-weights", action="store_true", help="the class-weights comparison")
    p.add_argument("--shrink", type=int, default=15, help="the small class's share: 1/N")
    p.add_argument("--workdir", default=None)
    p.add_argument("--json", action="store_true")
    p.add_argument("--json-out", default=None)
    return p.parse_args(argv)


def demo(data: str, work: Path, size: int) -> Path:
    """DATA, or ``demo:N`` (N images over the demo's classes) generated under ``work``."""
    if not data.startswith("demo:"):
        return Path(data).resolve()
    from training.data.demo import CLASSES, make_demo_dataset

    per_class = max(int(data.split(":")[1]) // len(CLASSES), 2)
    return make_demo_dataset(work / "demo", per_class=per_class, size=size)


def progress(message: str) -> None:
    print(message, file=sys.stderr)


def config(args: argparse.Namespace, data: Path, **overrides):
    from training.config import TrainConfig

    values = {
        "data": str(data),
        "backbone": args.backbone,
        "weights": args.weights,
        "image_size": args.image_size,
        "epochs_head": args.epochs_head,
        "epochs_finetune": args.epochs_finetune,
        "seed": args.seed,
        **overrides,
    }
    return TrainConfig(**values)


def recalls(labels, probabilities, names: list[str]) -> dict[str, float | None]:
    from training.fit.class_weights import per_class_scores

    return {n: s["recall"] for n, s in per_class_scores(labels, probabilities, names).items()}


def tta_effect(store, run_id: str) -> dict:
    """Plain and TTA predictions of the run's saved model on its stored validation rows, with
    each view's own accuracy and the mirror-only average beside the full one."""
    import numpy as np

    from training.data.cache import open_cache
    from training.predict import load_model_file, predict_arrays
    from training.tta import tta_views, view_images

    with np.load(store.artifact(run_id, "predictions")) as saved:
        rows, labels = saved["rows"], saved["labels"]
        names, key = [str(n) for n in saved["class_names"]], str(saved["cache_key"])
    images = np.asarray(open_cache(store.cache_dir() / f"images-{key}").images[rows])
    model = load_model_file(store.artifact(run_id, "model"))
    views = tta_views(model)
    each = [predict_arrays(model, view_images(images, view)) for view in views]
    plain, tta = each[0], predict_arrays(model, images, tta=True)
    right_plain, right_tta = plain.argmax(1) == labels, tta.argmax(1) == labels

    def accuracy(probabilities) -> float:
        return round(float(np.mean(probabilities.argmax(1) == labels)), 4)

    return {
        "run": run_id,
        "images": len(rows),
        "views": [view.name for view in views],
        "accuracy": accuracy(plain),
        "accuracy_tta": accuracy(tta),
        "accuracy_flip_only": accuracy((each[0] + each[1]) / 2),
        "accuracy_per_view": {v.name: accuracy(p) for v, p in zip(views, each, strict=True)},
        "fixed": int(np.sum(~right_plain & right_tta)),
        "broken": int(np.sum(right_plain & ~right_tta)),
        "recall": recalls(labels, plain, names),
        "recall_tta": recalls(labels, tta, names),
    }


def lopsided_demo(work: Path, size: int, shrink: int) -> tuple[Path, str]:
    """train/ (150 a class, the last class 150 // shrink) and val/ (40 a class) of demo shapes."""
    import shutil

    from training.data.demo import CLASSES, make_demo_dataset

    source = make_demo_dataset(work / "demo-190", per_class=190, size=size)
    root, small = work / "lopsided", CLASSES[-1]
    shutil.rmtree(root, ignore_errors=True)
    for name in CLASSES:
        files = sorted((source / name).glob("*.png"))
        keep = 150 // shrink if name == small else 150
        for split, chosen in (("train", files[:keep]), ("val", files[150:])):
            (root / split / name).mkdir(parents=True)
            for path in chosen:
                shutil.copy(path, root / split / name / path.name)
    return root, small


def class_weight_runs(args: argparse.Namespace, store, work: Path) -> dict:
    from training.fit.two_phase import train

    data, small = lopsided_demo(work, args.image_size, args.shrink)
    out = {"data": "demo shapes, train/ 150 a class with one at 1/shrink, val/ 40 a class"}
    out.update(small=small, shrink=args.shrink, runs={})
    for setting in ("none", "auto"):
        run = config(args, data, epochs_finetune=0, class_weights=setting)
        result = train(run, store, verbose=0, echo=progress)
        summary = result.summary
        out["runs"][setting] = {
            "run": result.run_id,
            "applied": summary["class_weights"]["applied"],
            "val_accuracy": summary["val"]["accuracy"],
            "recall": {n: s["recall"] for n, s in summary["per_class"]["classes"].items()},
        }
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import keras

    from training.store import RunStore

    report: dict = {
        "date": datetime.date.today().isoformat(),
        "backend": keras.backend.backend(),
        "cores": os.cpu_count(),
        "backbone": args.backbone,
        "weights": Path(args.weights).name if args.weights != "none" else "none",
        "image_size": args.image_size,
    }
    with work_folder(args.workdir, "bench-tta-") as work:
        store = RunStore(Path(args.home) if args.home else work / "home")
        if args.class_weights:
            report["class_weights"] = class_weight_runs(args, store, work)
        else:
            run_id = args.run
            if run_id is None:
                from training.fit.two_phase import train

                data = demo(args.data, work, args.image_size)
                run_id = train(config(args, data), store, verbose=0, echo=progress).run_id
                report["data"] = args.data
                report["epochs"] = {"head": args.epochs_head, "finetune": args.epochs_finetune}
            report["tta"] = tta_effect(store, run_id)
    emit_report(report, args.json, args.json_out)
    if not args.json:
        print(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
