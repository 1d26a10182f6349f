"""Head search, three ways, each from a cold start: plain Keras Tuner, plain Keras Tuner over
features computed once, and Babysitter's ``tuner.search``.

    python -m bench.pretrain --backbone MobileNetV2 --size 96 --out weights/mnv2-96.weights.h5
    KERAS_BACKEND=jax python -m bench.search demo:2000 --weights weights/mnv2-96.weights.h5
    KERAS_BACKEND=jax python -m bench.search demo:2000 --weights ... --repeat   # second search

The contestants (``bench/search_contestants.py``):

  (a) plain           ``keras_tuner.RandomSearch`` over a ``kt.HyperModel`` written as the Keras
                      transfer-learning guide teaches: backbone from the weights file,
                      ``trainable = False``, called with ``training=False``, head on top, compile;
                      ``tuner.search(x, y, validation_data=..., epochs=E)`` on decoded images.
                      The backbone runs every epoch of every trial.
  (b) plain-features  The obvious few-line optimisation: decode, ``predict`` the frozen backbone
                      once on train and val, ``RandomSearch`` over a head-only HyperModel.
  (c) babysitter      ``tuner.search.search(SearchConfig(..., weights=PATH, top_k=0,
                      epochs_finetune=0))`` (head search only) in its own empty
                      ``$BABYSITTER_HOME``: audit, decode cache, features once, staged
                      coarse-to-fine search, each stage's trials trained together as
                      populations (``--trial-execution batched``, the default).
  (d) babysitter-serial  The same with ``--trial-execution serial``: one trial at a time,
                      a compiled head per (hidden layer or not, optimizer) reused.

What is identical across contestants, per seed:

- the images: the parent audits DATA once with Babysitter's audit and splits it (stratified,
  seeded by the seed, duplicate groups kept on one side; a dataset's own val/ split is kept)
  into ``train/`` and ``val/`` folders of hard links that all three read; the same decoder
  (``training.data.images.load_rgb``) turns them into the same pixels; the parent reads every
  file once first, so every contestant finds them in the OS page cache;
- the weights: one file (``--weights PATH``; ``none`` makes a random-weights file, see below;
  ``imagenet`` is fetched once into a file) loaded by ``BackboneSpec.build``; BatchNorm in
  inference mode with the file's statistics, no recalibration, for all three;
- the search space: ``tuner.space.default_space([backbone], phase2=False)``, declared on the
  plain tuners' ``HyperParameters`` by its own ``register``: lr, l2, dropout, optimizer,
  schedule, head_units, label_smoothing, same names, bounds, scales and choices;
- what each hyperparameter means: Adam / AdamW(weight_decay=1e-4) / SGD(Nesterov, momentum 0.9);
  ``training.fit.schedules.schedule_rate`` per epoch; cross-entropy from logits with label smoothing
  on one-hot targets; L2 ``l2·Σw²`` on the head's kernels; dropout before the head; a ReLU
  hidden layer of ``head_units`` when > 0 (Glorot uniform); logits initialised N(0, 0.01²);
- the trial budget (``--trials``), epochs per trial (``--epochs``), batch size, float32;
- the sampler: Keras Tuner's random-search oracle over that space, seeded S + 1 (the seed of
  Babysitter's first stage; Keras Tuner reads 0 as "no seed"), so the plain tuners draw
  Babysitter's first-stage trials in the same order (the table counts them to prove it);
- a cold start: each contestant × seed is a fresh ``python -m bench.search --contestant ...``
  process with its own empty ``$BABYSITTER_HOME`` and ``$TMPDIR``, paying its own imports,
  decoding, backbone build and compilation. The order of contestants rotates with the seed.

What is not identical, by design (it is what is being compared):

- Babysitter samples the same space in coarse-to-fine stages (``--stages``): after the first
  stage it narrows the ranges around the best trials; plain ``RandomSearch`` keeps sampling the
  whole space;
- Babysitter stops a trial whose data loss passes 3× ln(classes) (recorded as failed, after a
  few batches); plain Keras Tuner trains every trial to the end. Trials that passed that line
  are counted as ``exploded`` for every contestant and timed apart from the others; a plain
  tuner's exploded trial still counts for its best accuracy (Keras Tuner would pick it);
- Babysitter audits the data and writes its run store, its caches (decoded images, features,
  audit, and on JAX a persistent compilation cache, all under its home: empty at a cold start)
  and trial records: all inside its clock;
- Babysitter reuses one compiled head per (hidden layer or not, optimizer) and resets its weights
  per trial; the plain tuners build and compile a new model per trial, after Keras Tuner's
  ``clear_session()``, and checkpoint each trial's best epoch (``SaveBestEpoch``);
- small numerics: Babysitter passes smoothed targets to a plain cross-entropy (the same loss as
  ``label_smoothing=`` on one-hot targets), validates its heads in batches of 1,024, seeds each
  trial's initial weights and shuffling itself; its ``data_loss`` (for the 3× rule) is against
  the smoothed targets, the plain tuners' against the one-hot ones (it only decides which plain
  trials are counted as exploded).

Reported per contestant: seconds per trial (median over completed trials, the trial's own work
— build/compile/fit for plain, ``HeadTrainer.train`` for serial Babysitter, its population's
wall time divided by its heads for batched Babysitter — and the wall time between trial ends,
oracle included); exploded and failed trials with their median seconds; whole-search
seconds (start of work, after imports, to the best trial known) and the process wall time
(spawn to exit) and import time; best validation accuracy (best epoch of the best trial) as
mean ± sd over seeds; seconds to reach ``--target`` (default 0.9 × the best mean accuracy
across contestants): the end of the first trial whose val accuracy reaches it; and seconds to
reach (b)'s own final best val accuracy on the same seed (median over seeds; a seed that never
reaches it counts as never). Ratios: (a)/(c), (b)/(c) and (d)/(c) for whole-search seconds,
time to target and time to (b)'s best.

``--repeat``: Babysitter twice in the same ``$BABYSITTER_HOME`` (two processes), first vs
second whole-search seconds: what the caches save a second search.

``--weights none``: the parent writes a random-weights file and every contestant uses it the
same way (BatchNorm statistics mean 0, variance 1, not recalibrated). Such features are close to
meaningless; the accuracies then compare nothing. Use pretrained weights for a published number.
"""

from __future__ import annotations

import time

_PROCESS_START = time.perf_counter()

import argparse  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

from bench.common import emit_report, work_folder  # noqa: E402  (standard library only)

ROOT = Path(__file__).resolve().parents[1]

CONTESTANTS = ("plain", "plain-features", "babysitter", "babysitter-serial")
TITLES = {
    "plain": "(a) plain Keras Tuner",
    "plain-features": "(b) plain KT, features once",
    "babysitter": "(c) Babysitter",
    "babysitter-serial": "(d) Babysitter, serial trials",
}
WARNING = """
!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!
!! --weights none: every contestant uses the same RANDOM-weight backbone (BatchNorm statistics  !!
!! of a fresh model, not recalibrated). Its features barely separate the classes: the times    !!
!! are real, the accuracies compare nothing. Publish only with --weights PATH (pretrained).    !!
!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!
"""


def dataset_arguments(parser: argparse.ArgumentParser) -> None:
    """DATA, --weights, --backbone and --size: what every contestant trains on (shared with
    ``bench.accuracy``)."""
    parser.add_argument(
        "data", nargs="?", help="a class-folder dataset (or train/ val/ folders), or demo:N"
    )
    parser.add_argument("--weights", help="a backbone weights file (PATH), imagenet, or none")
    parser.add_argument("--backbone", default="MobileNetV2")
    parser.add_argument("--size", type=int, default=96)


def run_arguments(parser: argparse.ArgumentParser) -> None:
    """How a benchmark runs and reports (shared with ``bench.accuracy``)."""
    parser.add_argument("--timeout", type=float, help="seconds allowed per contestant process")
    parser.add_argument("--json", action="store_true", help="print the JSON report, not the table")
    parser.add_argument("--json-out", help="write the JSON report (or, child: its result) here")
    parser.add_argument("--workdir", help="keep the datasets, homes and logs here")


def child_arguments(parser: argparse.ArgumentParser) -> None:
    """What the parent hands a contestant's child process (hidden from --help)."""
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--split-dir", help=argparse.SUPPRESS)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "))
    dataset_arguments(parser)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--stages", type=int, default=2, help="Babysitter's stages (its default)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 (split and tuner)")
    parser.add_argument("--val-split", type=float, default=0.2)
    parser.add_argument(
        "--target", type=float, help="val accuracy to time (default 0.9 x best mean accuracy)"
    )
    parser.add_argument(
        "--contestants",
        default=",".join(CONTESTANTS),
        help=f"comma-separated subset of {','.join(CONTESTANTS)}",
    )
    parser.add_argument(
        "--repeat", action="store_true", help="Babysitter twice in one home: first vs second"
    )
    run_arguments(parser)
    # Child process (spawned by the parent).
    parser.add_argument("--contestant", choices=CONTESTANTS, help=argparse.SUPPRESS)
    child_arguments(parser)
    parser.add_argument("--make-weights", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not args.contestant and not args.make_weights:
        if not args.data or not args.weights:
            parser.error("give DATA and --weights PATH|imagenet|none")
        if args.seeds < 1 or args.trials < 1 or args.epochs < 1:
            parser.error("--seeds, --trials and --epochs must be at least 1")
        names = [n.strip() for n in args.contestants.split(",") if n.strip()]
        unknown = sorted(set(names) - set(CONTESTANTS))
        if unknown or not names:
            parser.error(f"--contestants: unknown {unknown}; expected some of {CONTESTANTS}")
        args.contestants = [n for n in CONTESTANTS if n in names]
    return args


# ---------------------------------------------------------------------------------------------
# Child processes.


def child(args: argparse.Namespace) -> None:
    """One contestant from a cold start; its measurements go to ``--json-out``."""
    started = time.perf_counter()
    import bench.search_contestants as contestants  # Keras, Keras Tuner, the shared pieces

    if args.contestant.startswith("babysitter"):
        import tuner.search  # noqa: F401  (what ours imports on top of the shared pieces)
    imported = time.perf_counter()
    cfg = {
        "split_dir": args.split_dir,
        "backbone": args.backbone,
        "weights": args.weights,
        "size": args.size,
        "trials": args.trials,
        "epochs": args.epochs,
        "batch": args.batch,
        "stages": args.stages,
        "seed": args.seed,
    }
    workdir = Path(tempfile.mkdtemp(prefix=f"{args.contestant}-"))
    result = contestants.RUNNERS[args.contestant](cfg, workdir)
    result.update(
        contestant=args.contestant,
        seed=args.seed,
        import_s=imported - started,
        startup_s=started - _PROCESS_START,
        **contestants.environment(),
    )
    Path(args.json_out).write_text(json.dumps(result, default=float))


def make_weights(args: argparse.Namespace) -> None:
    """A weights file every contestant loads: random (seeded) or fetched ImageNet weights."""
    import keras

    from training.model.backbones import get_backbone

    keras.utils.set_random_seed(0)
    weights = None if args.weights == "none" else args.weights
    model = get_backbone(args.backbone).build(args.size, weights, include_top=False)
    model.save_weights(args.make_weights)


def spawn(argv: list[str], env: dict, log: Path, timeout: float | None) -> tuple[int, float]:
    """Run ``python -m bench.search ARGV`` in a fresh process; (exit code, wall seconds)."""
    started = time.perf_counter()
    with open(log, "w") as out:
        try:
            code = subprocess.run(
                [sys.executable, "-m", "bench.search", *argv],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                cwd=ROOT,
            ).returncode
        except subprocess.TimeoutExpired:
            code = -9
    return code, time.perf_counter() - started


def child_env(home: Path, tmp: Path) -> dict:
    tmp.mkdir(parents=True, exist_ok=True)
    home.parent.mkdir(parents=True, exist_ok=True)  # the home itself is made by the store
    env = dict(os.environ, BABYSITTER_HOME=str(home), TMPDIR=str(tmp))
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.pop("JAX_COMPILATION_CACHE_DIR", None)  # no persistent compilation cache: cold
    return env


def run_child(name: str, seed: int, split_dir: Path, weights: str, args, work: Path, home: Path):
    tag = f"{name}-s{seed}-{time.monotonic_ns()}"
    out = work / "results" / f"{tag}.json"
    out.parent.mkdir(exist_ok=True)
    argv = [
        "--contestant", name, "--seed", str(seed), "--split-dir", str(split_dir),
        "--weights", weights, "--backbone", args.backbone, "--size", str(args.size),
        "--trials", str(args.trials), "--epochs", str(args.epochs), "--batch", str(args.batch),
        "--stages", str(args.stages), "--json-out", str(out),
    ]  # fmt: skip
    log = work / "logs" / f"{tag}.log"
    log.parent.mkdir(exist_ok=True)
    print(f"  {TITLES[name]:30s} seed {seed} …", end=" ", flush=True, file=sys.stderr)
    code, wall = spawn(argv, child_env(home, work / "tmp" / tag), log, args.timeout)
    if code != 0 or not out.exists():
        tail = log.read_text(errors="replace")[-3000:]
        print(f"FAILED (exit {code}); log {log}:\n{tail}", file=sys.stderr)
        return {"contestant": name, "seed": seed, "error": f"exit {code}", "log_tail": tail}
    result = json.loads(out.read_text())
    result["process_s"] = wall
    print(
        f"{result['search_s']:.1f} s search, {wall:.1f} s process, "
        f"best val {_fmt(result.get('best_val_accuracy'))}",
        file=sys.stderr,
    )
    return result


# ---------------------------------------------------------------------------------------------
# Data and weights, prepared once by the parent (outside every clock).


def source_dataset(data: str, size: int, work: Path) -> Path:
    if data.startswith("demo:"):
        from training.data.demo import make_demo_dataset

        count = int(data.split(":", 1)[1])
        return make_demo_dataset(work / "source", per_class=max(1, count // 4), size=size)
    return Path(data).expanduser()


def make_splits(source: Path, seeds: int, val_split: float, work: Path) -> tuple[list, dict]:
    """One ``train/`` + ``val/`` folder of hard links per seed; Babysitter's audit and split."""
    from training.data.audit import raise_if_untrainable
    from training.data.split import split_records
    from training.fit.prepare import audit_path

    report = audit_path(source, work / "unpacked")
    raise_if_untrainable(report)
    readable = report.readable()
    groups = [*report.exact_duplicates, *report.near_duplicates]
    given = any(r.split == "val" for r in readable)
    folders, counts = [], []
    for seed in range(seeds):
        parts = split_records(readable, val_split, seed, groups=groups)
        folder = work / "splits" / f"seed{seed}"
        for split in ("train", "val"):
            for record in parts[split]:
                target = folder / split / record.label / record.rel.replace("/", "__")
                target.parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.link(record.path, target)
                except OSError:
                    shutil.copy2(record.path, target)
                target.read_bytes()  # into the page cache: the same start for everyone
        folders.append(folder)
        counts.append({s: len(parts[s]) for s in ("train", "val")})
    labels = sorted({r.label for r in readable})
    info = {
        "source": str(source),
        "classes": len(labels),
        "class_names": labels,
        "images": counts[0],
        "images_per_seed": counts,
        "split": "the dataset's own train/val folders (same for every seed)"
        if given
        else f"stratified, val {val_split}, seeded by the seed, duplicate groups on one side",
    }
    return folders, info


def resolve_weights(args, work: Path) -> tuple[str, dict]:
    """The one weights file every contestant loads, and what is known about it."""
    if args.weights not in ("none", "imagenet"):
        path = Path(args.weights).expanduser().resolve()
        if not path.exists():
            sys.exit(f"--weights: no such file {path}")
        sidecar = next(
            (
                p
                for p in (path.with_name(path.name + ".json"), path.with_suffix(".json"))
                if p.exists()
            ),
            None,
        )
        meta = json.loads(sidecar.read_text()) if sidecar else None
        return str(path), {"path": str(path), "kind": "file", "sidecar": meta}
    out = work / f"{args.weights}-{args.backbone}-{args.size}.weights.h5"
    argv = ["--make-weights", str(out), "--weights", args.weights]
    argv += ["--backbone", args.backbone, "--size", str(args.size)]
    log = out.with_suffix(".log")
    code, _ = spawn(argv, child_env(work / "weights-home", work / "tmp" / "weights"), log, None)
    if code != 0:
        tail = log.read_text(errors="replace")[-2000:]
        sys.exit(f"could not write the {args.weights} weights file:\n{tail}")
    kind = "random (seed 0, BatchNorm not recalibrated)" if args.weights == "none" else "imagenet"
    return str(out), {"path": str(out), "kind": kind, "sidecar": None}


# ---------------------------------------------------------------------------------------------
# Summaries.


def _fmt(value, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _mean_sd(values: list[float]) -> tuple[float | None, float | None]:
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def _median(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _gaps(run: dict) -> list[tuple[str, float]]:
    """(status, seconds since the previous trial ended) in order of ending; the first trial's
    gap runs from the start of its search loop."""
    previous = run.get("search_started_s") or 0.0
    out = []
    for trial in sorted(run["trials"], key=lambda t: t["end_s"]):
        out.append((trial["status"], trial["end_s"] - previous))
        previous = trial["end_s"]
    return out


def _same_values(a: dict, b: dict) -> bool:
    a = {k: v for k, v in a.items() if not k.startswith("tuner/")}
    b = {k: v for k, v in b.items() if not k.startswith("tuner/")}
    if a.keys() != b.keys():
        return False
    return all(
        math.isclose(a[k], b[k], rel_tol=1e-9) if isinstance(a[k], float) else a[k] == b[k]
        for k in a
    )


def shared_trials(plain: dict, ours: dict) -> tuple[int, int]:
    """How many of Babysitter's first-stage trials a plain tuner drew too, in the same order:
    the check that both sample the same space the same way (its later stages narrow it)."""
    first = sorted(  # in the order the oracle drew them (batched trials end out of order)
        (t for t in ours["trials"] if str(t["id"]).startswith("s1-")),
        key=lambda t: int(str(t["id"]).split("-", 1)[1]),
    )
    pairs = zip(plain["trials"], first, strict=False)  # plain ran more trials than stage 1
    same = sum(_same_values(p["values"], o["values"]) for p, o in pairs)
    return same, len(first)


def time_to_target(run: dict, target: float) -> float | None:
    reached = [
        t["end_s"]
        for t in run["trials"]
        if t.get("score") is not None and t["status"] != "failed" and t["score"] >= target
    ]
    return min(reached) if reached else None


def summarize(runs: list[dict], target: float) -> dict:
    ok = [r for r in runs if "error" not in r]
    trials = [t for r in ok for t in r["trials"]]
    gaps = [g for r in ok for g in _gaps(r)]

    def by(status):
        return [t["seconds"] for t in trials if t["status"] == status]

    ttt = [time_to_target(r, target) for r in ok]
    search_mean, search_sd = _mean_sd([r["search_s"] for r in ok])
    process_mean, process_sd = _mean_sd([r["process_s"] for r in ok])
    best_mean, best_sd = _mean_sd([r["best_val_accuracy"] for r in ok])
    parts = {}
    for r in ok:
        for key, value in r.get("parts_s", {}).items():
            parts.setdefault(key, []).append(value)
    return {
        "runs": len(runs),
        "failed_runs": len(runs) - len(ok),
        "trial_s": _median(by("completed")),
        "trial_wall_s": _median([g for status, g in gaps if status == "completed"]),
        "completed_trials": len(by("completed")),
        "exploded_trials": len(by("exploded")),
        "exploded_trial_s": _median(by("exploded")),
        "failed_trials": len(by("failed")),
        "failed_trial_s": _median(by("failed")),
        "search_s": search_mean,
        "search_sd": search_sd,
        "process_s": process_mean,
        "process_sd": process_sd,
        "import_s": _median([r["import_s"] for r in ok]),
        "parts_s": {k: statistics.fmean(v) for k, v in parts.items()},
        "best_val_accuracy": best_mean,
        "best_val_sd": best_sd,
        "time_to_target_s": ttt,
        "time_to_target_median_s": _median_with_misses(ttt),
        "reached_target": sum(t is not None for t in ttt),
        "notes": sorted({n for r in ok for n in r.get("notes", [])}),
    }


def time_to_features_best(runs: list[dict], features_runs: list[dict]) -> dict:
    """Seconds each run took to reach the final best val accuracy of (b) (plain Keras Tuner
    over features computed once) on the same seed: the median, a miss counting as never."""
    times = []
    for run, theirs in zip(runs, features_runs, strict=True):
        if "error" in run or "error" in theirs or theirs.get("best_val_accuracy") is None:
            continue
        # Less a millionth: (b)'s accuracies are float32 (0.835 is 0.8350000024), ours float64.
        times.append(time_to_target(run, theirs["best_val_accuracy"] - 1e-6))
    return {
        "to_features_best_s": _median_with_misses(times),
        "reached_features_best": [sum(t is not None for t in times), len(times)],
    }


def _median_with_misses(values: list[float | None]) -> float | None:
    """Median, a run that never reached the target counting as infinitely slow (None if the
    median itself is such a run)."""
    if not values:
        return None
    median = statistics.median([float("inf") if v is None else v for v in values])
    return None if median == float("inf") else median


def _ratio(theirs, ours) -> float | None:
    return theirs / ours if theirs is not None and ours else None


def print_table(report: dict, out) -> None:
    a = report["args"]
    d = report["data"]
    print(
        f"\nSearch benchmark · {report['backend']} · {report['machine']['cpus']} CPUs · "
        f"{report['date'][:10]}\n{a['backbone']} {a['size']} px, weights "
        f"{report['weights']['kind']}"
        f" ({report['weights']['path']}), {d['images']['train']} train / {d['images']['val']} val "
        f"images, {d['classes']} classes; {a['trials']} trials × {a['epochs']} epochs, batch "
        f"{a['batch']}, seeds 0..{a['seeds'] - 1}",
        file=out,
    )
    target = report["target"]
    head = (
        f"{'':30s}{'s/trial':>9s}{'wall/trial':>11s}{'exploded':>13s}{'search s':>16s}"
        f"{'process s':>11s}{'import s':>9s}{'best val acc':>16s}   to {target['value']:.3f}"
    )
    print(head, file=out)
    for name, s in report["summary"].items():
        exploded = f"{s['exploded_trials']}"
        if s["exploded_trials"]:
            exploded += f" ({_fmt(s['exploded_trial_s'], 2)} s)"
        search = f"{_fmt(s['search_s'], 1)} ± {_fmt(s['search_sd'], 1)}"
        best = f"{_fmt(s['best_val_accuracy'])} ± {_fmt(s['best_val_sd'])}"
        ttt = s["time_to_target_median_s"]
        ttt_text = f"{_fmt(ttt, 1)} s" if ttt is not None else "not reached"
        print(
            f"{TITLES[name]:30s}{_fmt(s['trial_s']):>9s}{_fmt(s['trial_wall_s']):>11s}"
            f"{exploded:>13s}{search:>16s}{_fmt(s['process_s'], 1):>11s}"
            f"{_fmt(s['import_s'], 1):>9s}{best:>16s}   {ttt_text} "
            f"({s['reached_target']}/{s['runs'] - s['failed_runs']})",
            file=out,
        )
        parts = ", ".join(f"{k} {v:.1f} s" for k, v in s["parts_s"].items())
        print(f"{'':32s}parts: {parts}", file=out)
        if "to_features_best_s" in s:
            reached, seeds = s["reached_features_best"]
            when = s["to_features_best_s"]
            print(
                f"{'':32s}to (b)'s final best val acc of the same seed: "
                f"{_fmt(when, 1) + ' s' if when is not None else 'not reached'} "
                f"(median; reached {reached}/{seeds})",
                file=out,
            )
        if "same_trials_as_babysitter_stage1" in s:
            same, total = s["same_trials_as_babysitter_stage1"]
            print(
                f"{'':32s}drew {same} of Babysitter's {total} first-stage trials, same order "
                "(same space, same oracle seed)",
                file=out,
            )
        if s["failed_trials"] or s["failed_runs"]:
            print(f"{'':32s}failed: {s['failed_trials']} trials, {s['failed_runs']} runs", file=out)
        for note in s["notes"]:
            print(f"{'':32s}note: {note}", file=out)
    print(f"target {target['value']:.3f}: {target['how']}", file=out)
    for key, r in report["ratios"].items():
        to_target = (
            f"{r['to_target']:.2f}×"
            if r["to_target"] is not None
            else "n/a (a median run did not reach the target)"
        )
        to_best = r.get("to_features_best")
        print(
            f"{TITLES[key]} ÷ Babysitter, seconds: whole search {_fmt(r['whole_search'], 2)}×, "
            f"to target {to_target}, to (b)'s best {_fmt(to_best, 2)}×; best val "
            f"{_fmt(r['best_val_theirs'])} vs {_fmt(r['best_val_ours'])} (Babysitter)",
            file=out,
        )


# ---------------------------------------------------------------------------------------------
# Main.


def compare(args, work: Path, folders: list[Path], weights: str) -> tuple[dict, dict]:
    runs: dict[str, list[dict]] = {name: [] for name in args.contestants}
    for seed, folder in enumerate(folders):
        shift = seed % len(args.contestants)
        order = args.contestants[shift:] + args.contestants[:shift]  # who goes first rotates
        for name in order:
            home = work / "homes" / f"{name}-s{seed}" / "home"
            runs[name].append(run_child(name, seed, folder, weights, args, work, home))
    best = [
        _mean_sd([r.get("best_val_accuracy") for r in rs if "error" not in r])[0]
        for rs in runs.values()
    ]
    best = [b for b in best if b is not None]
    if args.target is not None:
        target = {"value": args.target, "how": "given with --target"}
    else:
        value = 0.9 * max(best) if best else 1.0
        target = {"value": value, "how": "0.9 × the best mean best-val-accuracy of the contestants"}
    summary = {name: summarize(rs, target["value"]) for name, rs in runs.items()}
    if "plain-features" in runs:
        for name, rs in runs.items():
            summary[name].update(time_to_features_best(rs, runs["plain-features"]))
    ratios = {}
    if "babysitter" in summary:
        ours = summary["babysitter"]
        for name in ("plain", "plain-features", "babysitter-serial"):
            if name in summary:
                s = summary[name]
                pairs = [
                    shared_trials(p, o)
                    for p, o in zip(runs[name], runs["babysitter"], strict=True)
                    if "error" not in p and "error" not in o
                ]
                s["same_trials_as_babysitter_stage1"] = [
                    sum(a for a, _ in pairs),
                    sum(b for _, b in pairs),
                ]
                ratios[name] = {
                    "whole_search": _ratio(s["search_s"], ours["search_s"]),
                    "to_target": _ratio(
                        s["time_to_target_median_s"], ours["time_to_target_median_s"]
                    ),
                    "process": _ratio(s["process_s"], ours["process_s"]),
                    "to_features_best": _ratio(
                        s.get("to_features_best_s"), ours.get("to_features_best_s")
                    ),
                    "best_val_theirs": s["best_val_accuracy"],
                    "best_val_ours": ours["best_val_accuracy"],
                }
    return {"runs": runs, "summary": summary, "ratios": ratios, "target": target}, runs


def repeat(args, work: Path, folders: list[Path], weights: str) -> dict:
    """Babysitter twice per seed in one home (two processes): what a second search costs."""
    rows = []
    for seed, folder in enumerate(folders):
        home = work / "homes" / f"repeat-s{seed}" / "home"
        first = run_child("babysitter", seed, folder, weights, args, work, home)
        second = run_child("babysitter", seed, folder, weights, args, work, home)
        rows.append({"seed": seed, "first": first, "second": second})
    ok = [r for r in rows if "error" not in r["first"] and "error" not in r["second"]]
    ratios = [r["first"]["search_s"] / r["second"]["search_s"] for r in ok]
    return {
        "runs": rows,
        "first_search_s": _mean_sd([r["first"]["search_s"] for r in ok]),
        "second_search_s": _mean_sd([r["second"]["search_s"] for r in ok]),
        "first_process_s": _mean_sd([r["first"]["process_s"] for r in ok]),
        "second_process_s": _mean_sd([r["second"]["process_s"] for r in ok]),
        "ratio": _mean_sd(ratios),
        "process_ratio": _mean_sd([r["first"]["process_s"] / r["second"]["process_s"] for r in ok]),
    }


def print_repeat(report: dict, out) -> None:
    a, rep = report["args"], report["repeat"]
    print(
        f"\nSecond search · {report['backend']} · {a['backbone']} {a['size']} px · "
        f"{report['data']['images']['train']} train / {report['data']['images']['val']} val · "
        f"{a['trials']} trials × {a['epochs']} epochs",
        file=out,
    )
    for row in rep["runs"]:
        first, second = row["first"], row["second"]
        if "error" in first or "error" in second:
            print(f"  seed {row['seed']}: failed", file=out)
            continue
        print(
            f"  seed {row['seed']}: first {first['search_s']:.1f} s "
            f"(process {first['process_s']:.1f} s)  second {second['search_s']:.1f} s "
            f"(process {second['process_s']:.1f} s)  ratio "
            f"{first['search_s'] / second['search_s']:.2f}×",
            file=out,
        )
        for label, run in (("first", first), ("second", second)):
            parts = ", ".join(f"{k} {v:.1f} s" for k, v in run.get("parts_s", {}).items())
            print(f"      {label}: {parts}", file=out)
    mean, sd = rep["ratio"]
    print(
        f"  whole search, first / second: {_fmt(mean, 2)}× ± {_fmt(sd, 2)}; with process "
        f"start-up: {_fmt(rep['process_ratio'][0], 2)}×",
        file=out,
    )


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.contestant:
        return child(args)
    if args.make_weights:
        return make_weights(args)
    with work_folder(args.workdir, "bench_search_") as work:
        if args.weights == "none":
            print(WARNING, file=sys.stderr)
        source = source_dataset(args.data, args.size, work)
        folders, data = make_splits(source, args.seeds, args.val_split, work)
        weights, weights_info = resolve_weights(args, work)
        from tuner.space import default_space

        report = {
            "benchmark": "bench/search.py",
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "machine": {
                "cpus": os.cpu_count(),
                "platform": platform.platform(),
                "processor": platform.processor() or platform.machine(),
                "python": platform.python_version(),
            },
            "args": {
                k: v
                for k, v in vars(args).items()
                if k not in ("contestant", "seed", "split_dir", "make_weights")
            },
            "weights": weights_info,
            "data": data,
            "space": default_space([args.backbone], phase2=False).to_dict(),
        }
        if args.weights == "none":
            report["warning"] = "random weights: the accuracies compare nothing"
        if args.repeat:
            report["repeat"] = repeat(args, work, folders, weights)
            runs = [r[k] for r in report["repeat"]["runs"] for k in ("first", "second")]
        else:
            result, by_name = compare(args, work, folders, weights)
            report.update(result)
            runs = [r for rs in by_name.values() for r in rs]
        done = [r for r in runs if "error" not in r]
        report["backend"] = done[0]["backend"] if done else os.environ.get("KERAS_BACKEND", "?")
        report["versions"] = done[0]["versions"] if done else {}
        out = sys.stderr if args.json else sys.stdout
        if args.weights == "none":
            print(WARNING, file=out)
        (print_repeat if args.repeat else print_table)(report, out)
        emit_report(report, args.json, args.json_out)


if __name__ == "__main__":
    main()
