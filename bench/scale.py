"""Does the fixed cost grow linearly, and does memory stay flat, as a dataset grows?

For each size (default 5k, 10k, 20k, 40k images; generated on the fly, never committed) a fresh
child process with its own empty ``$BABYSITTER_HOME`` runs the three steps every run pays once,
through the same functions ``train`` calls:

  audit      scan, decode-check, hash and compare every file (``prepare.audit_path``)
  cache      split, then decode every image once into the uint8 memmap (``prepare_data``)
  features   the frozen backbone's pooled features of every image, into the feature cache

Reported per size: each step's wall seconds and seconds per 1,000 images, the child's peak RSS
(``os.wait4``'s rusage of that child alone), and the cache's size on disk. Targets: linear time
(each step's seconds per image at each size within 1.25× of the size before; the sizes
double, so a step that grows as n² shows as 2×) and peak RSS under
3 GB at 40k images (the decoded cache is a memmap; nothing may load it whole).

    KERAS_BACKEND=tensorflow python -m bench.scale --weights weights/mobilenetv2-96.weights.h5 \
        --backbone MobileNetV2 --size 224 --sizes 5000,10000,20000,40000 --json-out scale.json

Random-weights runs (``--weights none``) also pass over the images to re-estimate BatchNorm
statistics and cache no features, so pass a weights file to measure what a user with pretrained
weights pays (any file that fits the backbone: convolution weights do not depend on the size).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from itertools import pairwise
from pathlib import Path

TARGET_LINEAR = 1.25  # a step's seconds per image at a size over those at the size before
TARGET_RSS_GB = 3.0  # at the largest size


def write_photos(root: Path, count: int, size: int, classes: int = 10) -> None:
    """Class folders of smooth random JPEGs: noise blurred by upscaling a tiny image, so the
    files are photo-sized (tens of KB at 256 px), distinct, and cost a real decode."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(count)
    for i in range(count):
        folder = root / f"class_{i % classes}"
        folder.mkdir(parents=True, exist_ok=True)
        small = rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)
        image = Image.fromarray(small).resize((size, size), Image.Resampling.BICUBIC)
        grain = rng.integers(-12, 12, (size, size, 3))
        pixels = np.clip(np.asarray(image, dtype=np.int16) + grain, 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"{i:06d}.jpg", quality=88)


def child(args: argparse.Namespace) -> None:
    """One size in this process: time the three steps, print one JSON line."""
    from training.config import TrainConfig
    from training.fit.feature_cache import cached_features
    from training.fit.features import frozen_extractor
    from training.fit.prepare import audit_path, prepare_for_config
    from training.store import RunStore

    store = RunStore(Path(os.environ["BABYSITTER_HOME"]))
    config = TrainConfig(
        data=args.data,
        backbone=args.backbone,
        weights=args.weights,
        image_size=args.size,
        batch_size=args.batch,
    )
    times: dict[str, float] = {}
    started = time.perf_counter()
    audit_path(config.data, store.datasets_dir(), cache_dir=store.cache_dir())
    times["audit"] = time.perf_counter() - started
    started = time.perf_counter()
    spec, size, data = prepare_for_config(config, store, progress=False)
    times["cache"] = time.perf_counter() - started  # the audit is read back: the split + decode

    started = time.perf_counter()
    rows = {split: data.rows(split) for split in ("train", "val")}
    extractor = frozen_extractor(spec, data, size, config)  # the same pass train's phase 1 uses
    features = cached_features(
        spec, data.cache.images, rows, store.cache_dir(), data.cache.key, config.weights,
        extractor, lambda line: None,
    )  # fmt: skip
    times["features"] = time.perf_counter() - started
    print(
        json.dumps(
            {
                "images": len(data.cache),
                "seconds": times,
                "feature_shape": list(features["train"].shape),
            }
        )
    )


def disk_bytes(folder: Path) -> int:
    """Bytes the files under ``folder`` occupy on disk (allocated blocks, as ``du`` counts)."""
    return sum(p.stat().st_blocks * 512 for p in folder.rglob("*") if p.is_file())


def measure(count: int, args: argparse.Namespace, work: Path) -> dict:
    data = work / f"data-{count}"
    started = time.perf_counter()
    write_photos(data, count, args.source_size)
    generated = time.perf_counter() - started
    home = work / f"home-{count}"
    env = {**os.environ, "BABYSITTER_HOME": str(home), "TMPDIR": str(work)}
    command = [sys.executable, "-m", "bench.scale", "--child", "--data", str(data)]
    command += ["--backbone", args.backbone, "--weights", args.weights, "--size", str(args.size)]
    command += ["--batch", str(args.batch)]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
    out = proc.stdout.read() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"size {count}: the child failed (exit {proc.returncode})")
    result = json.loads(out.strip().splitlines()[-1])
    result["peak_rss_gb"] = usage.ru_maxrss * 1024 / 1e9  # Linux reports KiB
    result["cache_gb"] = disk_bytes(home / "cache") / 1e9
    result["data_gb"] = disk_bytes(data) / 1e9
    result["generate_s"] = generated
    shutil.rmtree(data, ignore_errors=True)
    shutil.rmtree(home, ignore_errors=True)
    return result


def report(results: list[dict]) -> dict:
    """Each doubling's cost per image against the size before it (1.0: linear), per step and in
    total, so a fixed start-up cost does not hide a step that grows faster than the data."""

    def per_image(r: dict, step: str | None = None) -> float:
        s = r["seconds"]
        return (s[step] if step else sum(s.values())) / r["images"]

    growth = {}
    for step in (None, "audit", "cache", "features"):
        ratios = [per_image(b, step) / per_image(a, step) for a, b in pairwise(results)]
        growth[step or "total"] = max(ratios) if ratios else None
    worst = max(v for v in growth.values() if v is not None) if len(results) > 1 else None
    return {
        "growth": growth,
        "linear_met": worst is not None and worst <= TARGET_LINEAR,
        "rss_met": results[-1]["peak_rss_gb"] < TARGET_RSS_GB,
    }


def print_table(results: list[dict], verdict: dict) -> None:
    print(
        f"{'images':>7} {'audit s':>8} {'cache s':>8} {'feat s':>8} {'s/1k':>6} "
        f"{'peak RSS GB':>11} {'cache GB':>9} {'data GB':>8}"
    )
    for r in results:
        s = r["seconds"]
        total = sum(s.values())
        print(
            f"{r['images']:>7} {s['audit']:>8.1f} {s['cache']:>8.1f} {s['features']:>8.1f} "
            f"{total / r['images'] * 1000:>6.2f} {r['peak_rss_gb']:>11.2f} "
            f"{r['cache_gb']:>9.2f} {r['data_gb']:>8.2f}"
        )
    growth = ", ".join(
        f"{step} {value:.2f}" for step, value in verdict["growth"].items() if value is not None
    )
    met = "met" if verdict["linear_met"] else "MISSED"
    print(
        f"cost per image, each size over the one before (worst): {growth} "
        f"(target <= {TARGET_LINEAR}): {met}"
    )
    met = "met" if verdict["rss_met"] else "MISSED"
    print(f"peak RSS at the largest size < {TARGET_RSS_GB} GB: {met}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="5000,10000,20000,40000")
    parser.add_argument("--backbone", default="MobileNetV2")
    parser.add_argument("--weights", default="none")
    parser.add_argument("--size", type=int, default=224, help="the model's input size")
    parser.add_argument("--source-size", type=int, default=256, help="the JPEGs' size")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--json-out", default=None)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--data", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args)
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    work = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    try:
        results = []
        for count in sizes:
            results.append(measure(count, args, work))
            print(f"  {count} images … {sum(results[-1]['seconds'].values()):.1f} s", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    verdict = report(results)
    print_table(results, verdict)
    if args.json_out:
        document = {"args": vars(args), "results": results, "verdict": verdict}
        Path(args.json_out).write_text(json.dumps(document, indent=2))


if __name__ == "__main__":
    main()
