"""Learning-rate schedules by name, shared by ``train`` and the tuner's head trials."""

from __future__ import annotations

import math

SCHEDULES = ("constant", "cosine", "step")


def schedule_rate(schedule: str, lr: float, epoch: int, epochs: int) -> float:
    """The rate for ``epoch`` (0-based) of ``epochs``: constant; cosine from ``lr`` toward 0;
    or step decay, ÷10 at half and again at three quarters of the epochs."""
    if schedule == "cosine":
        return lr * 0.5 * (1 + math.cos(math.pi * epoch / max(epochs, 1)))
    if schedule == "step":
        return lr * 0.1 ** ((epoch >= epochs // 2) + (epoch >= (3 * epochs) // 4))
    return lr
