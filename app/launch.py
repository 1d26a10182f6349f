"""CLI argument lists the app launches as jobs, and a rough time estimate.

Everything the user typed becomes one list element (never shell text), and values are checked
here, so a page cannot start a command the CLI would refuse for a reason we can see in advance.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

# CPU seconds per image for one forward pass of a 25M-parameter backbone at 224 px (ResNet50 on a
# laptop core): the unit the estimate scales by parameters and pixels. Rough on purpose.
_SECONDS_PER_IMAGE = 0.08
_REF_PARAMS, _REF_SIZE = 25e6, 224


@dataclass
class SearchForm:
    """What the Launch page asks for; fields map one to one onto ``tuner search`` flags."""

    data: str
    backbones: list[str]
    image_size: int | None = None
    weights: str = "imagenet"
    trials: int = 20
    stages: int = 2
    epochs_head: int = 10
    epochs_finetune: int = 3
    top_k: int = 2
    batch_size: int = 32
    val_split: float = 0.2
    seed: int = 0

    def validate(self) -> None:
        if not str(self.data).strip():
            raise ValueError("Pick a dataset first.")
        if not self.backbones:
            raise ValueError("Pick at least one backbone.")
        if any("," in b or not b.strip() for b in self.backbones):
            raise ValueError(f"Expected backbone names. Received: {self.backbones!r}")
        if self.stages < 1 or self.trials < self.stages:
            raise ValueError(
                f"Expected at least one trial per stage. Received: {self.trials} trials over "
                f"{self.stages} stages."
            )
        if self.epochs_head < 0 or self.epochs_finetune < 0 or self.top_k < 0:
            raise ValueError("Epochs and top K must be 0 or more (top K 0: head search only).")

    def common(self) -> list[str]:
        args = ["--weights", self.weights]
        if self.image_size:
            args += ["--image-size", str(int(self.image_size))]
        args += ["--batch-size", str(int(self.batch_size))]
        args += ["--val-split", str(self.val_split), "--seed", str(int(self.seed))]
        return args


def search_args(form: SearchForm) -> list[str]:
    """``tuner search DATA --backbone A,B …`` as a list (``python -m`` is added by the job)."""
    form.validate()
    return [
        "tuner",
        "search",
        str(form.data),
        "--backbone",
        ",".join(form.backbones),
        *form.common(),
        "--trials",
        str(int(form.trials)),
        "--stages",
        str(int(form.stages)),
        "--epochs-head",
        str(int(form.epochs_head)),
        "--epochs-finetune",
        str(int(form.epochs_finetune)),
        "--top-k",
        str(int(form.top_k)),
    ]


def check_args(form: SearchForm) -> list[str]:
    """``training check DATA --backbone FIRST …``: the sanity gate on the first backbone."""
    form.validate()
    return ["training", "check", str(form.data), "--backbone", form.backbones[0], *form.common()]


def command_line(args: list[str]) -> str:
    """What to type in a terminal for the same job."""
    return shlex.join(["python", "-m", *args])


def estimate_seconds(
    images: int,
    params: list[int | None],
    image_size: int,
    trials: int,
    epochs_head: int,
    epochs_finetune: int,
    top_k: int,
) -> float:
    """Very rough CPU time: one feature pass per backbone, head trials, top-K fine-tunes.

    A fine-tune epoch is a forward and backward pass (×3 a forward), plus one evaluation.
    """
    total = 0.0
    pixels = (image_size / _REF_SIZE) ** 2
    per_pass = []
    for p in params:
        forward = images * _SECONDS_PER_IMAGE * ((p or _REF_PARAMS) / _REF_PARAMS) * pixels
        per_pass.append(forward)
        total += forward
    total += trials * max(epochs_head, 1) * 0.05 + trials * 0.5
    worst = max(per_pass, default=0.0)
    total += top_k * (epochs_finetune * 4 * worst + worst)
    return total


def human_seconds(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
