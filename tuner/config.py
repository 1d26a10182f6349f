"""A search's arguments: one validated dataclass, saved with the run, compared on ``--resume``.

The app's Launch form builds the same object, so it imports no Keras (the backbone registry is
plain data until a model is built), and a field out of range raises :class:`FieldError`, which
the CLI prints as a flag and the form as its own label.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from training.config import BOUNDS, RUNS_ON, FieldError, SharedConfig, TrainConfig, check_int
from training.errors import ConfigError
from training.fields import arg
from training.model.backbones import BackboneSpec, get_backbone
from tuner.overrides import parse_overrides

TUNERS = ("random", "hyperband", "bayesian")
TRIAL_EXECUTIONS = ("batched", "serial")
"""``--trial-execution``: a stage's head trials stacked and trained together in one compiled
program (``tuner.batched_stage``), or one at a time (``tuner.heads.HeadTrainer``)."""
# Fields a resumed search may change without changing what it computes (``--resume`` and
# ``--distributed`` are flags of the command, not fields of the config).
RESUME_FREE = ("devices", "origin", "trial_execution")


@dataclass(kw_only=True)
class SearchConfig(SharedConfig):
    """Everything that decides what a search computes (CLI flags map one to one); the fields it
    shares with ``train`` (data, weights, size, batch, split, seed, precision, jit, devices) are
    :class:`SharedConfig`'s, handed unchanged to each fine-tune."""

    backbones: list[str] = arg(help="one name or several, comma-separated", flag="--backbone")
    trials: int = arg(20, "head trials over all stages")
    stages: int = arg(2, "coarse-to-fine stages")
    epochs_head: int = arg(10, "epochs of each head trial")
    epochs_finetune: int = arg(3, "phase 2 epochs of the top K")
    top_k: int = arg(2, "configurations fine-tuned in full (0: a head search only, no model)")
    tuner: str = arg("random", choices=TUNERS)
    trial_execution: str = arg(
        "batched",
        "batched: a stage's head trials train together, stacked, one compiled program per "
        "hidden-width bucket (same results as serial, within float tolerance); serial: one "
        "trial at a time. Falls back to serial, saying why, for --tuner hyperband (it promotes "
        "trials as each one finishes), --distributed and backends other than JAX/TensorFlow",
        choices=TRIAL_EXECUTIONS,
        group=RUNS_ON,
    )
    space: list[str] = arg(
        default_factory=list,
        help="override a range, e.g. lr=1e-4:1e-2 or optimizer=adam,sgd (repeatable)",
        action="append",
        metavar="NAME=LOW:HIGH|A,B",
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.backbones, str):
            self.backbones = [b.strip() for b in self.backbones.split(",") if b.strip()]
        self.validate()

    def validate(self) -> None:
        self.validate_shared()
        if not self.backbones:
            raise FieldError(
                "Expected at least one backbone in --backbone. Received none.", "backbones", []
            )
        specs = [get_backbone(name) for name in self.backbones]
        self.backbones = [spec.name for spec in specs]
        if len(set(self.backbones)) != len(self.backbones):
            raise FieldError(
                f"--backbone lists a backbone twice: {self.backbones}.", "backbones", self.backbones
            )
        check_int("trials", self.trials, 1, 10_000)
        check_int("stages", self.stages, 1, 20)
        if self.stages > self.trials:
            raise FieldError(
                f"Expected --stages ({self.stages}) to be at most --trials ({self.trials}): "
                "every stage needs at least one trial.",
                "stages",
                self.stages,
                high=self.trials,
                hint="every stage needs at least one trial",
            )
        # Trials are head trials: a search needs at least one head epoch.
        check_int("epochs_head", self.epochs_head, 1, BOUNDS["epochs_head"][1])
        check_int("epochs_finetune", self.epochs_finetune, *BOUNDS["epochs_finetune"])
        check_int("top_k", self.top_k, 0, self.trials, hint="one fine-tune per trial at most")
        if self.image_size is not None:
            for spec in specs:
                _fits(spec, self.image_size)
        if self.tuner not in TUNERS:
            raise ConfigError(f"Expected --tuner in {TUNERS}. Received: {self.tuner!r}.")
        if self.trial_execution not in TRIAL_EXECUTIONS:
            raise ConfigError(
                f"Expected --trial-execution in {TRIAL_EXECUTIONS}. "
                f"Received: {self.trial_execution!r}."
            )
        parse_overrides(self.space)  # a bad --space is refused before a run is recorded
        # Everything a fine-tune needs must also be a valid training config.
        self.train_config(self.backbones[0])

    def train_config(self, backbone: str, **overrides: Any) -> TrainConfig:
        """The training config of one fine-tune of this search (hyperparameters as overrides)."""
        values = {
            **self.shared_values(),
            "backbone": backbone,
            "epochs_head": self.epochs_head,
            "epochs_finetune": self.epochs_finetune,
            **overrides,
        }
        return TrainConfig(**values)

    def fingerprint(self, dataset_key: str) -> str:
        search = {k: v for k, v in self.to_dict().items() if k not in RESUME_FREE}
        blob = json.dumps({"search": search, "dataset": dataset_key}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def differences(self, stored: dict[str, Any]) -> list[str]:
        """Fields whose value differs from a stored search's config, as "name: old → new"."""
        mine = self.to_dict()
        return [
            f"{name}: {stored.get(name)!r} → {mine[name]!r}"
            for name in mine
            if name not in RESUME_FREE and stored.get(name) != mine[name]
        ]


def _fits(spec: BackboneSpec, image_size: Any) -> None:
    """A size the backbone cannot take is refused here, before any data is read (a size that
    is no integer at all is the training config's to refuse)."""
    number = isinstance(image_size, int) and not isinstance(image_size, bool)
    if number and image_size < spec.min_size:
        raise FieldError(
            f"Expected --image-size of at least {spec.min_size} for {spec.name} (its "
            f"downsampling stages leave nothing smaller to convolve). Received: {image_size}.",
            "image_size",
            image_size,
            spec.min_size,
            hint=f"the smallest {spec.name} accepts",
        )
