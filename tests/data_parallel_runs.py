"""Run by tests/test_data_parallel.py in a fresh JAX process split into two virtual CPU devices.

Trains the same tiny config on one device and on two, then once more on two with phase 2, and
prints what the test compares as JSON (one process: JAX and the dataset cache start once).
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

from training.config import TrainConfig
from training.errors import ConfigError
from training.fit.two_phase import train
from training.store import RunStore


def main(data: str, home: str) -> None:
    base = TrainConfig(
        data=data,
        backbone="MobileNetV2",
        weights="none",
        image_size=32,
        batch_size=4,
        epochs_head=2,
        epochs_finetune=0,
        lr=1e-3,
        dropout=0.0,  # nothing random that could be drawn differently per device
        augment=False,
        seed=3,
    )
    out: dict = {}
    Path(home).mkdir(parents=True, exist_ok=True)  # each store's home is made under it
    for name, changes in {
        "one": {"devices": 1},
        "two": {"devices": 2},
        "two_finetune": {"devices": 2, "epochs_finetune": 1, "finetune_lr": 1e-4},
    }.items():
        store = RunStore(Path(home) / name)
        result = train(dataclasses.replace(base, **changes), store, verbose=0, echo=print)
        saved = np.load(store.artifact(result.run_id, "predictions"))
        out[name] = {
            "summary": result.summary,
            "epochs": store.epochs(result.run_id),
            "probabilities": saved["probabilities"].tolist(),
        }
    try:
        train(dataclasses.replace(base, devices=3), RunStore(Path(home) / "three"), verbose=0)
    except ConfigError as error:
        out["three"] = str(error)
    try:
        train(dataclasses.replace(base, devices=2, batch_size=5), RunStore(Path(home) / "odd"))
    except ConfigError as error:
        out["odd_batch"] = str(error)
    print("RESULT " + json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
