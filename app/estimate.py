"""How long a search will take, as a range: measured on this machine where it can be.

A search is start-up (Python, TensorFlow, the data), one feature pass per backbone over every
image, the head trials on those cached features, then the top K fine-tunes: a head phase on
features, the fine-tune epochs through the network, an evaluation and a save.

Measured from this store: earlier train runs (a search's fine-tunes are train runs) of the
backbone at that image size record every epoch's seconds, so a fine-tune epoch costs so much per
training image and a head epoch so much per step (on cached features a step's overhead, not its
images, is the cost); the rest of such a run's wall time beyond ``RUN_FIXED_S`` (decoding, the
feature pass, evaluation) so much per image. Head trials are measured from earlier searches'
trials, start-up from earlier jobs (job started → run created). Without such records each part
is a guess: a forward pass costs the backbone's published multiply-adds (at its default size,
scaled by pixels) at ``CPU_GFLOPS``, a training step three forward passes. A guess gets the
wider range.

Every measured part is first made an idle machine's, with the other work each run recorded
beside it (``summary["machine"]``, :mod:`training.contention`), then slowed by the machine's
current load (:func:`work_share`): the job shares the cores with whatever else runs now.
"""

from __future__ import annotations

import dataclasses
import math
import os
import statistics
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from training import jobs
from training.contention import cpu_times as _cpu_times  # a module name tests replace
from training.data.images import IMAGE_EXTENSIONS
from training.errors import BabysitterError
from training.model.backbones import BackboneSpec, get_backbone
from training.store import RunStore
from training.store.trials import trials
from tuner.config import SearchConfig

# Multiply-adds (G) of one image at the backbone's default size, as the papers and the Keras
# applications table give them.
GFLOPS = {
    "VGG16": 15.5,
    "VGG19": 19.6,
    "ResNet50": 4.1,
    "ResNet101": 7.8,
    "ResNet152": 11.5,
    "ResNet50V2": 4.1,
    "ResNet101V2": 7.8,
    "ResNet152V2": 11.5,
    "InceptionV3": 5.7,
    "InceptionResNetV2": 13.2,
    "Xception": 8.4,
    "DenseNet121": 2.9,
    "DenseNet169": 3.4,
    "DenseNet201": 4.3,
    "MobileNet": 0.57,
    "MobileNetV2": 0.3,
    "MobileNetV3Small": 0.06,
    "MobileNetV3Large": 0.22,
    "EfficientNetB0": 0.39,
    "EfficientNetB1": 0.7,
    "EfficientNetB2": 1.0,
    "EfficientNetB3": 1.8,
    "EfficientNetB4": 4.2,
    "EfficientNetB5": 9.9,
    "EfficientNetB6": 19.0,
    "EfficientNetB7": 37.0,
    "EfficientNetV2B0": 0.72,
    "EfficientNetV2B1": 1.2,
    "EfficientNetV2B2": 1.7,
    "EfficientNetV2B3": 3.0,
    "EfficientNetV2S": 8.8,
    "EfficientNetV2M": 24.0,
    "EfficientNetV2L": 53.0,
    "ConvNeXtTiny": 4.5,
    "ConvNeXtSmall": 8.7,
    "ConvNeXtBase": 15.4,
    "ConvNeXtLarge": 34.4,
    "ConvNeXtXLarge": 60.9,
    "NASNetMobile": 0.56,
    "NASNetLarge": 23.8,
}
CPU_GFLOPS = 15.0  # multiply-adds per second (G) that two shared CPU cores sustain in TensorFlow
DECODE_S = 0.003  # reading and resizing one image
HEAD_STEP_S = 0.02  # one step of a dense head on cached features
TRIAL_EPOCH_S = 0.3  # one head-trial epoch, its compile spread over the epochs
RUN_FIXED_S = 10.0  # a fine-tune's model build, compile and save
STARTUP_S = 20.0  # Python, TensorFlow and the data scan before the run exists
SPREAD = {True: (0.7, 1.5), False: (0.5, 2.0)}  # (low, high) factor: measured, guessed
RUNS_READ = 5


SAMPLE_S = 0.25
"""How long the machine's CPU use is sampled for the estimate's load."""


@dataclass(frozen=True)
class Rates:
    """A backbone's costs in seconds: a head step, a fine-tune epoch per training image, the
    rest of a fine-tune run per image. ``runs`` is how many runs measured them (0: a guess)."""

    head_step: float
    finetune: float
    rest: float
    runs: int = 0
    features: float | None = None
    """A search's preparation and feature pass per image, from earlier searches (None: none;
    the fine-tune's ``rest`` stands in, an overestimate: it also builds, evaluates, saves)."""


@dataclass(frozen=True)
class Load:
    """The machine's work besides the job, in cores' worth (:func:`machine_load`), and the cores
    it shares them with."""

    average: float
    cores: int


@dataclass(frozen=True)
class Estimate:
    low: float
    high: float
    measured: bool
    basis: str


def guessed_rates(spec: BackboneSpec, image_size: int) -> Rates:
    """From the backbone's multiply-adds: what its first run on this machine will refine."""
    forward = GFLOPS.get(spec.name, 5.0) * (image_size / spec.default_size) ** 2 / CPU_GFLOPS
    return Rates(head_step=HEAD_STEP_S, finetune=3 * forward, rest=DECODE_S + 2 * forward)


def measured_rates(store: RunStore, spec: BackboneSpec, image_size: int) -> Rates | None:
    """From the newest completed train runs of this backbone at this size (None: there are
    none). A run that was ever interrupted is skipped: its wall time includes the pause."""
    head, finetune, rest = [], [], []
    for run in store.list_runs(kind="train", status="completed"):
        config = run.config
        size = config.get("image_size") or spec.default_size
        if config.get("backbone") != spec.name or size != image_size:
            continue
        events = store.events(run.id)
        if any(e.get("status") == "interrupted" for e in events):
            continue
        splits = next((e["splits"] for e in events if e.get("event") == "started"), None)
        if not splits or not splits.get("train"):
            continue
        seconds: dict[str, list[float]] = {"head": [], "finetune": []}
        for epoch in store.epochs(run.id):
            seconds.get(epoch["phase"], []).append(float(epoch.get("seconds", 0.0)))
        train = splits["train"]
        idle = idle_share(run.summary)
        if seconds["head"]:  # past the first epoch, whose compile is not a step's cost
            steps = math.ceil(train / int(config.get("batch_size") or 32))
            head.append(idle * statistics.median(seconds["head"][1:] or seconds["head"]) / steps)
        if seconds["finetune"]:
            finetune.append(idle * statistics.fmean(seconds["finetune"]) / train)
        wall = _seconds_between(run.created_at, run.updated_at)
        spent = sum(seconds["head"]) + sum(seconds["finetune"]) + RUN_FIXED_S
        rest.append(idle * max(wall - spent, 0.0) / sum(splits.values()))
        if len(rest) == RUNS_READ:
            break
    if not rest:
        return None
    guess = guessed_rates(spec, image_size)
    return Rates(
        head_step=statistics.median(head) if head else guess.head_step,
        finetune=statistics.median(finetune) if finetune else guess.finetune,
        rest=statistics.median(rest),
        runs=len(rest),
    )


def idle_share(summary: dict | None) -> float:
    """The share of the machine a finished run had (its recorded other work, through
    :func:`work_share`): its seconds times this are an idle machine's. 1 when not recorded
    (a run still going, or one from before the record)."""
    machine = (summary or {}).get("machine") or {}
    others, cores = machine.get("others"), machine.get("cores")
    if not isinstance(others, int | float) or not isinstance(cores, int) or cores < 1:
        return 1.0
    return work_share(Load(float(others), cores))


def trial_epoch_seconds(store: RunStore) -> float | None:
    """Median seconds per epoch of earlier searches' head trials (None: no search yet)."""
    per_epoch = []
    for run in store.list_runs(kind="search")[:RUNS_READ]:
        idle = idle_share(run.summary)
        for trial in trials(store, run.id):
            if trial["status"] == "completed" and trial["history"] and trial["seconds"]:
                per_epoch.append(idle * trial["seconds"] / len(trial["history"]))
    return statistics.median(per_epoch) if per_epoch else None


def startup_seconds(store: RunStore) -> float | None:
    """Median time from a job's start to its run's creation, over recent jobs, made an idle
    machine's with the other work its run recorded (None: no job yet)."""
    waits = []
    for job in jobs.list_jobs(store)[:20]:
        if job.run_id and job.kind != "training check":
            try:
                run = store.get_run(job.run_id)
            except BabysitterError:  # a run deleted since: nothing to measure
                continue
            wait = _seconds_between(job.created_at, run.created_at)
            if 0 < wait < 600:  # a resumed run was created before its job
                waits.append(idle_share(run.summary) * wait)
    return statistics.median(waits) if waits else None


def machine_load(sample_s: float = SAMPLE_S) -> Load:
    """The other work on this machine now, in cores' worth: the CPU time the machine spent busy
    over the last ``sample_s`` (``/proc/stat``) times its cores. Not the 1-minute load average:
    that still counts a job that ended a minute ago, and tasks waiting on disk, which take no
    core (measured with it, ``bench/estimate.py``: right after a search it read 1.2–2.3 and
    both measured ranges overshot their real times). Elsewhere the load average stands in;
    0 where the OS has neither."""
    cores = os.cpu_count() or 1
    first = _cpu_times()
    if first is not None:
        time.sleep(sample_s)
        second = _cpu_times()
        if second is not None and second[1] > first[1]:
            busy = (second[0] - first[0]) / (second[1] - first[1])
            return Load(round(min(max(busy, 0.0), 1.0) * cores, 2), cores)
    try:
        return Load(os.getloadavg()[0], cores)
    except OSError:
        return Load(0.0, cores)


def work_share(load: Load) -> float:
    """The fraction of the machine the job gets, by fair sharing: TensorFlow runs one thread
    per core, so with ``average`` other runnable processes each of the ``cores + average``
    threads gets ``cores / (cores + average)`` of a core, and the job that much of its speed.
    Measured rates are first made an idle machine's with the other work each run recorded
    (:func:`idle_share`). Load 0 → 1; load 2 × cores → 1/3: such a job takes three times as
    long."""
    return load.cores / (load.cores + max(load.average, 0.0))


def estimate(
    config: SearchConfig,
    images: int,
    rates: dict[str, Rates],
    startup: float | None,
    trial_epoch: float | None,
    load: Load | None = None,
) -> Estimate:
    """The search's wall time as a range; ``rates`` per backbone (measured or guessed), and
    ``startup``/``trial_epoch`` as measured (None: guessed); all slowed by ``load`` (None: this
    machine's now, :func:`machine_load`)."""
    load = machine_load() if load is None else load
    share = work_share(load)
    train = images * (1 - config.val_split)
    steps = math.ceil(train / config.batch_size)
    chosen = [rates[name] for name in config.backbones]
    fixed = STARTUP_S if startup is None else startup
    fixed += sum(r.rest if r.features is None else r.features for r in chosen) * images
    per_trial = TRIAL_EPOCH_S if trial_epoch is None else trial_epoch
    fixed += config.trials * config.epochs_head * per_trial
    finetunes = [
        RUN_FIXED_S
        + r.rest * images
        + config.epochs_head * steps * r.head_step
        + config.epochs_finetune * train * r.finetune
        for r in chosen
    ]
    measured = all(r.runs for r in chosen)  # the backbones' passes: most of the time
    low, high = SPREAD[measured]
    return Estimate(
        low=low * (fixed + config.top_k * min(finetunes)) / share,
        high=high * (fixed + config.top_k * max(finetunes)) / share,
        measured=measured,
        basis=_basis(config, rates, images) + " " + _load_basis(load, share),
    )


def _load_basis(load: Load, share: float) -> str:
    """The load the range assumed, in words (the estimate is only as good as that guess)."""
    cores = f"{load.cores} core{'s' if load.cores > 1 else ''}"
    return (
        f"Assumed this machine's current load: {load.average:.1f} on {cores}, "
        f"so the job gets about {share:.0%} of it."
    )


def _basis(config: SearchConfig, rates: dict[str, Rates], images: int) -> str:
    parts = []
    for name in config.backbones:
        runs = rates[name].runs
        parts.append(
            f"{name}: measured from {runs} earlier run{'s' if runs > 1 else ''} on this machine"
            if runs
            else f"{name}: a guess from its size (no earlier run at this image size here)"
        )
    work = (
        f"{images} images; {config.trials} trials of {config.epochs_head} head epochs; "
        f"{config.top_k} fine-tune(s) of {config.epochs_finetune} epochs"
    )
    return "; ".join(parts) + f". {work}."


def count_images(folder: str | Path) -> int:
    """Image files under ``folder`` (by extension: the estimate needs a count, not a decode)."""
    return sum(1 for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)


def rates_for(store: RunStore, name: str, image_size: int | None) -> Rates:
    spec = get_backbone(name)
    size = image_size or spec.default_size
    rates = measured_rates(store, spec, size) or guessed_rates(spec, size)
    return dataclasses.replace(rates, features=feature_seconds(store, spec.name, size))


def feature_seconds(store: RunStore, name: str, image_size: int) -> float | None:
    """Seconds per image of earlier one-backbone searches' preparation and feature pass at this
    size, made an idle machine's (None: no such search)."""
    per_image = []
    for run in store.list_runs(kind="search", status="completed")[:RUNS_READ]:
        summary = run.summary or {}
        seconds = (summary.get("seconds") or {}) if isinstance(summary.get("seconds"), dict) else {}
        if run.config.get("backbones") != [name] or run.config.get("image_size") != image_size:
            continue
        images = _images_of(store, summary.get("best_run"))
        if seconds.get("prepare_and_features") and images:
            per_image.append(idle_share(summary) * seconds["prepare_and_features"] / images)
    return statistics.median(per_image) if per_image else None


def _images_of(store: RunStore, run_id: str | None) -> int | None:
    """The images a train run read (its ``started`` event's splits)."""
    if not run_id:
        return None
    try:
        events = store.events(run_id)
    except BabysitterError:
        return None
    splits = next((e.get("splits") for e in events if e.get("event") == "started"), None)
    return sum(splits.values()) if isinstance(splits, dict) and splits else None


def human_range(low: float, high: float) -> str:
    """ "40 s–2 min", "1–3 min": each end in its own unit, the unit said once when shared."""
    ends = [_human(low, math.floor), _human(high, math.ceil)]
    if ends[0][1] == ends[1][1]:
        first, last = ends[0][0], ends[1][0]
        if first == last:
            return f"about {last} {ends[1][1]}"
        return f"{first}–{last} {ends[1][1]}"
    return f"{' '.join(ends[0])} – {' '.join(ends[1])}"


def _human(seconds: float, rounding) -> tuple[str, str]:
    if seconds < 90:
        return str(max(1, rounding(seconds))), "s"
    if seconds < 90 * 60:
        return str(max(1, rounding(seconds / 60))), "min"
    return f"{seconds / 3600:.1f}", "h"


def _seconds_between(start: str, end: str) -> float:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()
