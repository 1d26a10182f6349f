"""The fault zoo: plant each fault in a copy of a dataset, run the real ``check`` and ``train``
commands on it, and measure whether the babysitter names the fault with the right advice (recall)
and raises nothing else (false alarms).

    python -m bench.faults DATA [--backbone VGG16] [--weights none|PATH] [--image-size 64]
                           [--seeds 3] [--json]

DATA is a folder (class folders, or train/ and val/), ``demo`` (the procedural demo classes) or
``lookalike`` (3 classes of distinct images sharing layout and colours per class). The commands
run in this process through ``training.cli.main`` with ``--json``: argument parsing, the audit,
the fit and the findings are exactly what a user's command runs.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench import zoo_data

PROBLEM = ("warn", "fail")
GRID = (1e-3, 1e-2, 1e-1)
"""Phase-1 rates tried when lr_range finds no window."""
HEAD_EPOCHS = 20
"""Phase-1 epochs of every run: enough for a head on cached features to level off at the
calibrated rate (at 10 the healthy runs were still falling 17% an epoch, and were rightly told to
train longer)."""
MAX_LR = 10.0
"""The largest rate ``train`` accepts: a ×1000 fault on a rate over 0.01 is clipped to it."""


@dataclass
class Expect:
    """One way of naming a fault: the check, and the knob and direction its action must move
    (or words its advice must contain, for data faults that no setting fixes)."""

    check: str
    param: str | None = None
    direction: str | None = None
    words: tuple[str, ...] = ()
    statuses: tuple[str, ...] = PROBLEM

    def met_by(self, finding: dict) -> bool:
        from training.babysit.advice import direction

        if finding["check"] != self.check or finding["status"] not in self.statuses:
            return False
        if self.param is not None:
            action = finding.get("action") or {}
            param = action.get("param", action.get("hyperparameter"))
            return param == self.param and direction(action) == self.direction
        advice = finding.get("advice", "").lower()
        return all(word.lower() in advice for word in self.words)

    def label(self) -> str:
        if self.param:
            return f"{self.check} ({self.param} {self.direction})"
        return self.check + (f' ("{" ".join(self.words)}")' if self.words else "")


@dataclass
class Fault:
    name: str
    expect: list[Expect]  # any one met names the fault
    args: tuple[str, ...] = ()
    plant: Callable[[Path, np.random.Generator], object] | None = None
    allowed: tuple[str, ...] = ()  # checks that legitimately fire as consequences
    commands: tuple[str, ...] = ("check", "train")
    note: str = ""
    only: str | None = None  # "generated": only on the generated look-alike set
    patch: Callable[[], contextlib.AbstractContextManager] | None = None


@contextlib.contextmanager
def frozen_heads():
    """A head whose layers are not trainable: the bug "nothing learns", planted in the code."""
    import training.gate as gate
    import training.model.classifier as model

    original = model.build_head

    def frozen(*args, **kwargs):
        head = original(*args, **kwargs)
        head.trainable = False
        return head

    model.build_head = gate.build_head = frozen
    try:
        yield
    finally:
        model.build_head = gate.build_head = original


PHASE2 = ("--epochs-finetune", "3", "--unfreeze", "1")
LABEL_CONSEQUENCES = ("overfit_tiny_subset", "generalization_gap")
"""Wrong training labels also keep a tiny subset from being memorised quickly (that check's
advice: "check that labels match the images") and put validation above training (the negative
gap's advice names noisy labels first): both name the right cause."""
FAULTS = [
    Fault("healthy", []),
    Fault(
        "lr x1000 (phase 1)",
        [Expect("loss_explosion", "lr", "down"), Expect("loss_curve", "lr", "down")],
        ("--lr", "x1000"),
        commands=("train",),
    ),
    Fault(
        "lr x1000 (phase 2)",
        [
            Expect("loss_explosion", "finetune_lr", "down"),
            Expect("loss_curve", "finetune_lr", "down"),
        ],
        (*PHASE2, "--finetune-lr", "x1000"),
        commands=("train",),
    ),
    Fault(
        "lr x1e-4 (phase 1)",
        [Expect("loss_flat", "lr", "up"), Expect("loss_curve", "lr", "up")],
        ("--lr", "x1e-4"),
        commands=("train",),
    ),
    Fault(
        "lr x1e-4 (phase 2)",
        [Expect("loss_flat", "finetune_lr", "up"), Expect("loss_curve", "finetune_lr", "up")],
        (*PHASE2, "--epochs-head", "0", "--finetune-lr", "x1e-4"),
        commands=("train",),
        note="phase 1 skipped: after a trained head a too-low phase-2 rate costs nothing visible",
    ),
    Fault(
        "L2 x1e4",
        [
            Expect("underfitting", "l2", "down"),
            Expect("loss_curve", "l2", "down"),
            Expect("loss_flat", "l2", "down"),
        ],
        ("--l2", "1.0"),
        note="from the usual 1e-4",
    ),
    Fault(
        "dropout 0.95",
        [
            Expect("train_mode_gap", "dropout", "down"),
            Expect("underfitting", "dropout", "down"),
            Expect("generalization_gap", "dropout", "down"),
        ],
        ("--dropout", "0.95"),
        commands=("train",),
    ),
    Fault(
        "training labels shuffled",
        [
            Expect("label_noise", words=("training labels",), statuses=("fail",)),
            Expect("val_at_chance", words=("class folder",), statuses=("fail",)),
        ],
        plant=lambda root, rng: zoo_data.relabel_training(root, 1.0, rng),
        allowed=LABEL_CONSEQUENCES,
    ),
    Fault(
        "20% training labels flipped",
        [Expect("label_noise", words=("labels are likely wrong",))],
        plant=lambda root, rng: zoo_data.relabel_training(root, 0.2, rng),
        allowed=LABEL_CONSEQUENCES,
    ),
    Fault(
        "exact copies in val",
        [Expect("leakage", words=("exact",), statuses=("fail",))],
        plant=lambda root, rng: zoo_data.leak_copies(root, 0.1, rng),
        commands=("check",),
    ),
    Fault(
        "val look-alikes, distinct",
        [],
        plant=lambda root, rng: zoo_data.redraw_val_lookalikes(root),
        only="generated",
        note="must raise nothing",
    ),
    Fault(
        "one class 20x smaller",
        [Expect("class_balance", words=("--class-weights auto",))],
        plant=lambda root, rng: zoo_data.shrink_class(root, zoo_data.classes_of(root)[-1], 20),
        allowed=("too_few_images",),
        commands=("check",),
    ),
    Fault(
        "5 images per class",
        [Expect("too_few_images", words=("add images",), statuses=("fail",))],
        plant=lambda root, rng: zoo_data.keep_per_class(root, 5),
        allowed=("generalization_gap", "label_noise", "overfit_tiny_subset"),
        commands=("check",),
    ),
    Fault(
        "frozen head",
        [
            Expect("overfit_tiny_subset", words=("frozen",), statuses=("fail",)),
            Expect("loss_flat", words=("nothing is trainable",), statuses=("fail",)),
        ],
        patch=frozen_heads,
        allowed=("lr_range", "loss_curve", "underfitting", "regularization_raises_loss"),
    ),
    Fault(
        "blank images",
        [Expect("overfit_tiny_subset", words=("constant",), statuses=("fail",))],
        plant=lambda root, rng: zoo_data.blank_all(root),
        allowed=("leakage", "lr_range", "label_noise", "initial_loss"),
        commands=("check",),
    ),
    Fault(
        "too few epochs",
        [Expect("loss_curve", "epochs_head", "up")],
        ("--epochs-head", "3"),
        commands=("train",),
    ),
]


def run_command(argv: list[str]) -> tuple[int, dict, str]:
    """``python -m training …  --json`` in this process: (exit code, JSON document, stderr)."""
    import keras

    from training.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([*argv, "--json"])
    keras.utils.clear_session(free_memory=True)
    try:
        return code, json.loads(out.getvalue()), err.getvalue()
    except json.JSONDecodeError:
        return code, {}, err.getvalue()


def judge(fault: Fault, findings: list[dict], baseline: set[str] = frozenset()) -> dict:
    """Whether the fault was named with the right advice, and what else was raised: other
    checks' warnings and fails, and an expected check that moves the wrong knob.

    ``baseline``: the ``check:status`` every healthy run raised on this dataset (a true trait of
    the data and setup, such as weak random-weight features): raised again on a faulty run it is
    listed as baseline, not as a false alarm of that fault."""
    problems = [f for f in findings if f["status"] in PROBLEM]
    named = [f for f in problems if any(e.met_by(f) for e in fault.expect)]
    expected_checks = {e.check for e in fault.expect}
    raised_expected = [f for f in problems if f["check"] in expected_checks]
    from training.babysit.advice import direction

    knobs = {(e.param, e.direction) for e in fault.expect if e.param}
    others, repeated, wrong = [], [], []
    for f in problems:
        action = f.get("action") or {}
        moved = (action.get("param"), direction(action))
        if f["check"] in expected_checks and knobs and action.get("param") and moved not in knobs:
            wrong.append(f"{f['check']}:{f['status']} ({moved[0]} {moved[1]})")
        if f["check"] in expected_checks or f["check"] in fault.allowed:
            continue
        if fault.expect and f"{f['check']}:{f['status']}" in baseline:
            repeated.append(f"{f['check']}:{f['status']}")
            continue
        cause = (f.get("evidence") or {}).get("explained_by")
        if cause in expected_checks or cause in fault.allowed:
            continue
        others.append(f)
    return {
        "named": bool(named) if fault.expect else None,
        "raised": sorted({f"{f['check']}:{f['status']}" for f in raised_expected}),
        "right_advice": bool(named) if fault.expect else None,
        "false_alarms": sorted(f"{f['check']}:{f['status']}" for f in others) + wrong,
        "baseline": sorted(repeated),
        "advice": [f["advice"] for f in (named or raised_expected)][:1],
    }


def scaled(args: tuple[str, ...], common: list[str]) -> list[str]:
    """Fault arguments with ``xF`` values made concrete: F times the flag's value in ``common``."""
    out = list(args)
    for i, value in enumerate(out):
        if value.startswith("x") and i > 0:
            base = float(common[len(common) - 1 - common[::-1].index(out[i - 1]) + 1])
            out[i] = f"{min(base * float(value[1:]), MAX_LR):.3g}"
    return out


def run_fault(
    fault: Fault, base: Path, work: Path, common: list[str], seed: int, baseline: set[str]
) -> dict:
    root = work / f"{fault.name.replace(' ', '_').replace('%', 'pc')}_{seed}"
    shutil.copytree(base, root)
    if fault.plant is not None:
        fault.plant(root, np.random.default_rng(seed))
    findings, codes, seconds, diagnoses = [], {}, {}, {}
    patch = fault.patch() if fault.patch else contextlib.nullcontext()
    with patch:
        for command in fault.commands:
            began = time.monotonic()
            code, payload, err = run_command(
                [command, str(root), *common, "--seed", str(seed), *scaled(fault.args, common)]
            )
            seconds[command] = round(time.monotonic() - began, 1)
            codes[command] = code
            if not payload:
                tail = err.strip().splitlines()[-1:] or ["(no output)"]
                findings.append({"check": f"{command}_error", "status": "fail", "advice": tail[0]})
            for f in payload.get("findings", []):
                findings.append({**f, "command": command})
            if payload.get("diagnosis"):
                diagnoses[command] = payload["diagnosis"]
    # A check raised by both commands counts once, at its worst status.
    merged: dict[str, dict] = {}
    for f in findings:
        key = f"{f['check']}|{(f.get('evidence') or {}).get('phase', '')}"
        if key not in merged or (f["status"] == "fail" and merged[key]["status"] != "fail"):
            merged[key] = f
    verdict = judge(fault, list(merged.values()), baseline)
    problems = [
        {
            "check": f["check"],
            "status": f["status"],
            "command": f.get("command"),
            "measured": f.get("measured"),
            "advice": f.get("advice"),
            "action": f.get("action"),
            "explained_by": (f.get("evidence") or {}).get("explained_by"),
        }
        for f in merged.values()
        if f["status"] in PROBLEM
    ]
    quality = next(
        (
            (f.get("evidence") or {}).get("feature_quality")
            for f in findings
            if f["check"] == "label_noise"
        ),
        None,
    )
    last = diagnoses.get("train") or diagnoses.get("check") or {}
    return {
        "fault": fault.name,
        "seed": seed,
        "codes": codes,
        "seconds": seconds,
        **verdict,
        "feature_quality": quality,
        "diagnosis": last.get("cause"),
        "diagnosis_sentence": last.get("sentence"),
        "problems": problems,
    }


def baseline(rows: list[dict]) -> set[str]:
    """What every healthy run so far raised (``check:status``)."""
    healthy = [set(r["false_alarms"]) for r in rows if r["fault"] == "healthy"]
    return set.intersection(*healthy) if healthy else set()


def summarise(rows: list[dict]) -> dict:
    faulty = [r for r in rows if r["named"] is not None]
    named = sum(r["named"] for r in faulty)
    alarms: Counter[str] = Counter()
    for r in rows:
        for alarm in r["false_alarms"]:
            alarms[alarm.split(":")[0]] += 1
    healthy = [r for r in rows if r["named"] is None]
    return {
        "recall": f"{named}/{len(faulty)}",
        "recall_share": named / len(faulty) if faulty else None,
        "false_alarms_total": sum(len(r["false_alarms"]) for r in rows),
        "false_alarms_on_healthy": sum(len(r["false_alarms"]) for r in healthy),
        "false_alarms_by_check": dict(alarms),
        "baseline": sorted(baseline(rows)),
    }


def table(rows: list[dict]) -> str:
    lines = [
        "| fault | seed | features | expected | raised | named, right advice | other warn/fail "
        "| as on healthy | diagnosis |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    faults = {f.name: f for f in FAULTS}
    for r in rows:
        fault = faults[r["fault"]]
        expected = " or ".join(e.label() for e in fault.expect) or "nothing"
        named = {None: "–", True: "yes", False: "**no**"}[r["named"]]
        others = ", ".join(r["false_alarms"]) or "none"
        quality = r.get("feature_quality")
        features = f"{quality:.2f}" if isinstance(quality, int | float) else "–"
        lines.append(
            f"| {r['fault']} | {r['seed']} | {features} | {expected} "
            f"| {', '.join(r['raised']) or '–'} | {named} | {others} "
            f"| {', '.join(r.get('baseline', [])) or '–'} | {r.get('diagnosis') or 'none'} |"
        )
    return "\n".join(lines)


def calibrate(base: Path, common: list[str]) -> dict:
    """The learning rates a careful user would train with: where ``check``'s lr_range sweep on
    the healthy data fell fastest (fastai's "steep" suggestion), at most 0.1; when it found no
    window (weak features), the best of ``GRID`` by validation accuracy; a tenth of that for
    phase 2. Every learning-rate fault is then a multiple of a sane rate, not of a default that
    may not suit these features."""
    _, payload, _ = run_command(["check", str(base), *common])
    for finding in payload.get("findings", []):
        evidence = finding.get("evidence") or {}
        if finding["check"] != "lr_range":
            continue
        if evidence.get("steepest"):
            lr = float(f"{min(evidence['steepest'], 0.1):.1g}")
            return {"lr": lr, "finetune_lr": lr / 10, "rule": "steepest fall", "lr_range": "ok"}
    # No window (weak features): what a careful user tries next, a short head fit at each
    # decade, keeping the best validation accuracy.
    scores = {}
    for lr in GRID:
        _, result, _ = run_command(["train", str(base), *common, "--lr", f"{lr:g}"])
        scores[lr] = (result.get("val") or {}).get("accuracy", 0.0)
    lr = max(scores, key=lambda rate: (scores[rate], -rate))
    return {"lr": lr, "finetune_lr": lr / 10, "rule": f"grid {scores}", "lr_range": "no window"}


def dataset(data: str, work: Path, size: int) -> tuple[Path, bool]:
    """The base copy with train/ and val/ splits, and whether it is the generated look-alike."""
    if data == "lookalike":
        return zoo_data.make_lookalike(work / "base"), True
    if data == "demo":
        from training.data.demo import make_demo_dataset

        source = make_demo_dataset(work / "demo_source", per_class=80, size=size)
        return zoo_data.as_splits(source, work / "base"), False
    return zoo_data.as_splits(Path(data).expanduser().resolve(), work / "base"), False


class Refused(Exception):
    """A bench argument or report that cannot be used: one line, exit 2, nothing run."""


def rejudge(path: str) -> dict:
    """A saved ``--json`` report scored again by this file's rules (the runs are not repeated:
    each row keeps every warn and fail its commands raised)."""
    try:
        report = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError) as error:
        raise Refused(f"--rejudge {path}: cannot be read ({error})") from None
    except ValueError as error:
        raise Refused(f"--rejudge {path}: not JSON ({error})") from None
    faults = {f.name: f for f in FAULTS}
    rows = []
    try:
        for row in report["rows"]:
            if row["fault"] not in faults:
                raise Refused(
                    f"--rejudge {path}: names fault {row['fault']!r}, not one of {_names()}"
                )
            findings = [
                {**p, "evidence": {"explained_by": p.get("explained_by")}} for p in row["problems"]
            ]
            healthy = baseline(rows)
            rows.append({**row, **judge(faults[row["fault"]], findings, healthy)})
    except (KeyError, TypeError, AttributeError) as error:
        what = f"no {error} where a report has one" if isinstance(error, KeyError) else error
        raise Refused(
            f"--rejudge {path}: not a report of `python -m bench.faults --json` ({what})"
        ) from None
    return {**report, "rows": rows, "summary": summarise(rows)}


def _names() -> str:
    return ", ".join(repr(f.name) for f in FAULTS)


def check_args(args: argparse.Namespace) -> None:
    """Refuse what would run nothing, or run every command into the same error (a report of
    "recall 0/0", exit 0): a missing DATA, an unknown fault or backbone, a bad size or count."""
    from training.errors import BabysitterError
    from training.model.backbones import check_weights, get_backbone

    if args.data not in ("demo", "lookalike") and not Path(args.data).expanduser().is_dir():
        raise Refused(f"DATA {args.data}: not a folder; give a dataset folder, demo or lookalike")
    unknown = sorted(_wanted(args) - {f.name for f in FAULTS})
    if unknown:
        raise Refused(f"--only names unknown fault(s) {unknown}; the faults are {_names()}")
    if _wanted(args) and not [f for f in FAULTS if _runs(f, args)]:
        raise Refused(f"--only {args.only!r}: none of these faults runs on {args.data}")
    if args.seeds < 1:
        raise Refused(f"--seeds {args.seeds}: give 1 or more")
    try:
        get_backbone(args.backbone).check_size(args.image_size)
        check_weights(args.weights)
    except BabysitterError as error:
        raise Refused(str(error)) from None


def _wanted(args: argparse.Namespace) -> set[str]:
    """The names ``--only`` gives; one name with a comma in it is kept whole."""
    if args.only.strip() in {f.name for f in FAULTS}:
        return {args.only.strip()}
    return {n.strip() for n in args.only.split(",") if n.strip()}


def _runs(fault: Fault, args: argparse.Namespace) -> bool:
    """Whether ``fault`` is run: selected by ``--only`` (or all), and on data it can use."""
    wanted = _wanted(args)
    if wanted and fault.name not in wanted:
        return False
    return fault.only != "generated" or args.data == "lookalike"


def main(argv: list[str] | None = None) -> int:
    """The bench's command line: 0 when it ran, 2 with one line when refused."""
    try:
        return _main(argv)
    except Refused as refused:
        print(f"error: {refused}", file=sys.stderr)
        return 2


def _main(argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="a dataset folder, 'demo' or 'lookalike'")
    parser.add_argument("--backbone", default="VGG16")
    parser.add_argument("--weights", default="none")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--seeds", type=int, default=3, help="seeds of the healthy run")
    parser.add_argument("--only", default="", help="comma-separated fault names")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--rejudge", metavar="REPORT", help="score a saved --json report again")
    args = parser.parse_args(argv)
    if args.rejudge:
        report = rejudge(args.rejudge)
        print(json.dumps(report, indent=1) if args.json else table(report["rows"]))
        return 0
    check_args(args)
    work = Path(tempfile.mkdtemp(prefix="fault_zoo_"))
    os.environ["BABYSITTER_HOME"] = str(work / "home")
    common = [
        "--backbone",
        args.backbone,
        "--weights",
        args.weights,
        "--image-size",
        str(args.image_size),
        "--epochs-head",
        str(HEAD_EPOCHS),
        "--epochs-finetune",
        "0",
    ]
    try:
        base, _ = dataset(args.data, work, args.image_size)
        rates = calibrate(base, common)
        common += ["--lr", f"{rates['lr']:.2g}", "--finetune-lr", f"{rates['finetune_lr']:.2g}"]
        print(f"learning rates from check's lr_range: {rates}", file=sys.stderr, flush=True)
        rows = []
        for fault in FAULTS:
            if not _runs(fault, args):
                continue
            seeds = range(args.seeds) if fault.name == "healthy" else [0]
            for seed in seeds:
                row = run_fault(fault, base, work, common, seed, baseline(rows))
                rows.append(row)
                print(
                    f"{row['fault']:<30} seed {seed}: named={row['named']} raised={row['raised']}"
                    f" others={row['false_alarms']} {row['seconds']}",
                    file=sys.stderr,
                    flush=True,
                )
        report = {
            "args": vars(args),
            "learning_rates": rates,
            "rows": rows,
            "summary": summarise(rows),
        }
        if args.json:
            print(json.dumps(report, indent=1))
        else:
            print(table(rows))
            print()
            print(json.dumps(report["summary"], indent=1))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
