"""Trials per minute of one search run by Keras Tuner's chief/worker engine with 1, 2 and 3 workers.

Each worker count gets a fresh ``$BABYSITTER_HOME`` (the same dataset, weights and search; the
feature cache is filled first by a ``check`` outside the clock, so every count starts from the
same warm cache). The chief and its workers are separate processes talking gRPC on loopback, as
``python -m tuner search --distributed chief|worker`` runs them on several machines. The clock
runs from the chief's start to its exit, start-up included; trials per minute are the trials the
store recorded as finished over that time, and the speed-up is against one worker.

    KERAS_BACKEND=tensorflow python -m bench.distributed demo:800 \
        --weights weights/mobilenetv2-96.weights.h5 --backbone MobileNetV2 --size 96 \
        --trials 24 --workers 1,2,3 --json-out distributed.json

On a machine with C cores, N workers can at best be min(N, C / cores-per-worker) times as fast;
the report prints the machine's core count beside the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.search import dataset_arguments, source_dataset


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def search_argv(args: argparse.Namespace, data: Path) -> list[str]:
    argv = [sys.executable, "-m", "tuner", "search", str(data), "--backbone", args.backbone]
    argv += ["--weights", args.weights, "--image-size", str(args.size)]
    argv += ["--trials", str(args.trials), "--stages", str(args.stages)]
    argv += ["--epochs-head", str(args.epochs), "--epochs-finetune", "0", "--top-k", "0"]
    return argv


def warm_cache(args: argparse.Namespace, data: Path, home: Path) -> None:
    """Decode the images and compute the features once, outside the clock."""
    argv = [sys.executable, "-m", "training", "check", str(data), "--backbone", args.backbone]
    argv += ["--weights", args.weights, "--image-size", str(args.size)]
    env = {**os.environ, "BABYSITTER_HOME": str(home)}
    subprocess.run(argv, env=env, check=True, capture_output=True)


def run_workers(count: int, args: argparse.Namespace, data: Path, home: Path) -> dict:
    from training.store import RunStore
    from training.store.trials import trials

    env = {**os.environ, "BABYSITTER_HOME": str(home)}
    env.update(KERASTUNER_ORACLE_IP="127.0.0.1", KERASTUNER_ORACLE_PORT=str(free_port()))
    argv = search_argv(args, data)
    started = time.perf_counter()
    chief = subprocess.Popen(
        [*argv, "--distributed", "chief", "--json"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    workers = [
        subprocess.Popen(
            [*argv, "--distributed", "worker"],
            env={**env, "KERASTUNER_TUNER_ID": f"tuner{i}"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for i in range(count)
    ]
    try:
        out, _ = chief.communicate(timeout=args.timeout)
        seconds = time.perf_counter() - started
        for worker in workers:
            worker.wait(timeout=120)
    finally:
        for p in (chief, *workers):
            if p.poll() is None:
                p.kill()
    if chief.returncode != 0:
        raise SystemExit(f"{count} worker(s): the chief failed (exit {chief.returncode})")
    run_id = json.loads(out)["run_id"]
    done = [t for t in trials(RunStore(home), run_id) if t["status"] == "completed"]
    return {
        "workers": count,
        "seconds": seconds,
        "trials": len(done),
        "trials_per_minute": len(done) / seconds * 60,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    dataset_arguments(parser)
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--stages", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--workers", default="1,2,3")
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--json-out", default=None)
    args = parser.parse_args(argv)
    if not args.data:
        parser.error("DATA is required (a class-folder dataset, or demo:N)")
    args.weights = args.weights or "none"
    work = Path(tempfile.mkdtemp(prefix="bench-distributed-"))
    data = source_dataset(args.data, args.size, work)
    results = []
    for count in [int(n) for n in args.workers.split(",")]:
        home = work / f"home-{count}"
        warm_cache(args, data, home)
        results.append(run_workers(count, args, data, home))
        r = results[-1]
        print(f"  {count} worker(s): {r['trials']} trials in {r['seconds']:.1f} s", flush=True)
    base = results[0]["trials_per_minute"]
    print(f"{os.cpu_count()} CPU cores")
    print(f"{'workers':>7} {'trials':>6} {'seconds':>8} {'trials/min':>10} {'speed-up':>8}")
    for r in results:
        r["speed_up"] = r["trials_per_minute"] / base
        print(
            f"{r['workers']:>7} {r['trials']:>6} {r['seconds']:>8.1f} "
            f"{r['trials_per_minute']:>10.2f} {r['speed_up']:>7.2f}x"
        )
    if args.json_out:
        document = {"args": vars(args), "cpu_count": os.cpu_count(), "results": results}
        Path(args.json_out).write_text(json.dumps(document, indent=2))


if __name__ == "__main__":
    main()
