"""Does Launch's time estimate hold? Three searches of growing size, started as the app starts
them, each timed against the range the app would have shown just before it.

In one fresh ``$BABYSITTER_HOME`` (no earlier runs: the first estimate is a first guess, later
ones are measured from the jobs before them, as on a new user's machine), for each size: the
estimate exactly as Launch computes it (``app.estimate`` with this store's rates and the
machine's load at that moment), then the job through ``training.jobs.start_job``, timed from the
start call to its exit. Prints each range, the real time and whether it fell inside.

    KERAS_BACKEND=tensorflow python -m bench.estimate [DATA | demo:N] [--backbone MobileNetV2]
        [--size 64] [--json-out FILE]
"""

from __future__ import annotations

import argparse
import datetime
import os
import time
from pathlib import Path

from bench.common import emit_report, work_folder

SIZES = (
    {"trials": 2, "stages": 1, "epochs_head": 2, "epochs_finetune": 1, "top_k": 1},
    {"trials": 6, "stages": 2, "epochs_head": 3, "epochs_finetune": 2, "top_k": 1},
    {"trials": 10, "stages": 2, "epochs_head": 3, "epochs_finetune": 2, "top_k": 2},
)
POLL_S = 0.5


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("data", nargs="?", default="demo:240")
    p.add_argument("--backbone", default="MobileNetV2")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--workdir", default=None)
    p.add_argument("--json-out", default=None)
    return p.parse_args(argv)


def dataset(data: str, work: Path) -> Path:
    """DATA, or ``demo:N`` generated under ``work``."""
    if not data.startswith("demo:"):
        return Path(data).resolve()
    from training.data.demo import CLASSES, make_demo_dataset

    per_class = max(int(data.split(":")[1]) // len(CLASSES), 2)
    return make_demo_dataset(work / "demo", per_class=per_class)


def one_job(store, config) -> dict:
    """The app's estimate for ``config`` now, then the job itself, timed."""
    from app import estimate
    from app.launch import search_args
    from training import jobs

    names = tuple(config.backbones)
    rates = {n: estimate.rates_for(store, n, config.image_size) for n in names}
    load = estimate.machine_load()
    guess = estimate.estimate(
        config,
        estimate.count_images(config.data),
        rates,
        estimate.startup_seconds(store),
        estimate.trial_epoch_seconds(store),
        load=load,
    )
    start = time.monotonic()
    job = jobs.start_job(store, search_args(config))
    while jobs.get_job(store, job.id).status == "running":
        time.sleep(POLL_S)
        jobs.refresh(store)
    seconds = time.monotonic() - start
    ended = jobs.get_job(store, job.id)
    return {
        "config": {k: getattr(config, k) for k in SIZES[0]},
        "measured_estimate": guess.measured,
        "low_s": round(guess.low, 1),
        "high_s": round(guess.high, 1),
        "load": round(load.average, 2),
        "real_s": round(seconds, 1),
        "inside": guess.low <= seconds <= guess.high,
        "status": ended.status,
    }


def describe(size: dict, r: dict) -> str:
    kind = "measured" if r["measured_estimate"] else "first guess"
    verdict = "inside" if r["inside"] else "OUTSIDE"
    return (
        f"trials {size['trials']:>2} stages {size['stages']} head {size['epochs_head']} "
        f"fine-tune {size['epochs_finetune']} top-k {size['top_k']}: shown "
        f"{r['low_s']:.0f}–{r['high_s']:.0f} s ({kind}, load {r['load']}), "
        f"real {r['real_s']:.0f} s, {verdict} ({r['status']})"
    )


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    with work_folder(args.workdir, "bench_estimate_") as work:
        os.environ["BABYSITTER_HOME"] = str(work / "home")
        from training.store import RunStore
        from tuner.config import SearchConfig

        data = dataset(args.data, work)
        store = RunStore()
        rows = []
        for size in SIZES:
            config = SearchConfig(
                data=str(data),
                backbones=[args.backbone],
                weights="none",
                image_size=args.size,
                **size,
            )
            rows.append(one_job(store, config))
            print(describe(size, rows[-1]), flush=True)
        inside = sum(r["inside"] for r in rows)
        print(f"{inside} of {len(rows)} real times inside the range shown")
        report = {
            "benchmark": "bench/estimate.py",
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "cpus": os.cpu_count(),
            "args": vars(args),
            "rows": rows,
        }
        emit_report(report, False, args.json_out)


if __name__ == "__main__":
    main()
