"""The demo: generate the embedded dataset, audit it, fine-tune a small backbone, say what next.

It is the README's first command, so it must finish in minutes on a 2-core laptop and work
offline: when ImageNet weights cannot be downloaded it says so plainly and trains from random
initial weights (the only place that falls back silently-but-loudly; ``train`` refuses instead).
"""

from __future__ import annotations

from training.cli.console import emit_json, print_result, to_stderr
from training.config import TrainConfig
from training.errors import WeightsError
from training.store import RunStore

DEMO_BACKBONE = "MobileNetV2"
DEMO_IMAGE_SIZE = 48
DEMO_PER_CLASS = 80  # 4 classes; more images generalise better from random weights


def demo_config(data: str, backbone: str, weights: str) -> TrainConfig:
    """Short, CPU-sized settings; random weights need a higher fine-tuning rate and all blocks."""
    pretrained = weights != "none"
    return TrainConfig(
        data=data,
        backbone=backbone,
        weights=weights,
        image_size=DEMO_IMAGE_SIZE,
        batch_size=16,
        epochs_head=10,
        epochs_finetune=8 if pretrained else 20,
        lr=1e-3,
        finetune_lr=1e-4 if pretrained else 2e-3,
        dropout=0.1,
        seed=0,
    )


def run_demo(backbone: str | None = None, as_json: bool = False) -> int:
    from training.data.demo import make_demo_dataset
    from training.fit.prepare import audit_path
    from training.fit.two_phase import train
    from training.model.backbones import get_backbone

    echo = to_stderr if as_json else print
    store = RunStore()
    data_dir = make_demo_dataset(store.demo_dir(), per_class=DEMO_PER_CLASS)
    echo(f"Demo dataset: {data_dir}")
    report = audit_path(data_dir, store.datasets_dir())
    counts = ", ".join(f"{name} {n}" for name, n in sorted(_class_counts(report).items()))
    echo(
        f"Audit: {len(report.readable())} readable images ({counts}); "
        f"verdict: {'trainable' if report.verdict.trainable else 'NOT trainable'}."
    )

    spec = get_backbone(backbone or DEMO_BACKBONE)
    weights = "imagenet"
    try:
        spec.build(DEMO_IMAGE_SIZE, "imagenet")
    except WeightsError as error:
        weights = "none"
        reason = _first_sentence(error)
        echo(
            f"\nImageNet weights for {spec.name} could not be downloaded here ({reason})."
            "\nThe demo therefore trains from RANDOM initial weights: expect lower accuracy than "
            "a pretrained backbone gives.\n"
        )
    config = demo_config(str(data_dir), spec.name, weights)
    result = train(config, store, verbose=0 if as_json else 1, echo=echo)
    if as_json:
        emit_json({"run_id": result.run_id, "dataset": str(data_dir), **result.summary})
        return 0
    print_result(result.run_id, result.summary)
    sample = next(iter(report.readable())).path
    print("\nWhat next:")
    print(f"  python -m training runs show {result.run_id}")
    print(f"  python -m training predict {result.run_id} {sample}")
    print(f"  python -m training inspect {spec.name} --image-size {DEMO_IMAGE_SIZE}")
    print("  python -m training train YOUR_DATA --backbone ResNet50   # your own images")
    return 0


def _class_counts(report) -> dict[str, int]:
    counts: dict[str, int] = {}
    for record in report.readable():
        counts[record.label] = counts.get(record.label, 0) + 1
    return counts


def _first_sentence(error: Exception) -> str:
    """What failed; the rest of a ``WeightsError`` is advice (--weights none) the demo follows."""
    return str(error).split(". ")[0]
