"""Wall time of the sanity gate (``python -m training check``) on CPU, small and medium data.

Generates the procedural demo classes at two sizes, runs the whole gate (audit, split, decode,
one backbone pass over at most 512 training images, the four checks) as a user would, twice per
dataset (the second run reuses the decoded cache), and prints seconds and each finding's status.

    KERAS_BACKEND=jax python -m bench.check --backbone MobileNetV2
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

SIZES = {"small": (4, 40, 64), "medium": (4, 500, 128)}  # classes, images per class, pixels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="MobileNetV2")
    parser.add_argument("--weights", default="none")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench_check_"))
    os.environ["BABYSITTER_HOME"] = str(workdir / "home")
    try:
        from training.config import TrainConfig
        from training.data.demo import make_demo_dataset
        from training.gate import run_gate

        report = {"args": vars(args)}
        for name, (_, per_class, size) in SIZES.items():
            data = make_demo_dataset(workdir / name, per_class=per_class, size=size)
            config = TrainConfig(
                data=str(data), backbone=args.backbone, weights=args.weights, image_size=size
            )
            times = []
            for _ in range(2):
                started = time.perf_counter()
                result = run_gate(config, verbose=0, echo=lambda m: None)
                times.append(round(time.perf_counter() - started, 1))
            report[name] = {
                "images": 4 * per_class,
                "pixels": size,
                "first_run_s": times[0],
                "cached_run_s": times[1],
                "findings": {f["check"]: f["status"] for f in result.findings},
            }
        import keras

        report["backend"] = keras.backend.backend()
        print(json.dumps(report, indent=2))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
