"""How much of the machine a run had: the CPU time other processes used while it ran.

The app's time estimate scales the rates measured from earlier runs by the machine's load now.
A rate measured while other work shared the cores is slower than the machine is, so each run
records the other work it ran beside (in cores' worth, from ``/proc/stat`` minus this process's
own CPU time), and the estimate turns its rates into an idle machine's before slowing them by
today's load. Standard library only; off Linux nothing is recorded.
"""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Snapshot:
    wall: float
    busy: float | None  # the machine's busy CPU seconds, all cores
    own: float  # this process's (and its finished children's) CPU seconds


def snapshot() -> Snapshot:
    own = sum(
        usage.ru_utime + usage.ru_stime
        for usage in (
            resource.getrusage(resource.RUSAGE_SELF),
            resource.getrusage(resource.RUSAGE_CHILDREN),
        )
    )
    return Snapshot(time.monotonic(), _busy_seconds(), own)


def others_since(start: Snapshot) -> dict[str, float | int] | None:
    """``{"others": cores' worth of other work since start, "cores": N}``; None without
    ``/proc/stat`` or time."""
    now = snapshot()
    wall = now.wall - start.wall
    if start.busy is None or now.busy is None or wall <= 0:
        return None
    other = max(now.busy - start.busy - (now.own - start.own), 0.0) / wall
    return {"others": round(other, 2), "cores": os.cpu_count() or 1}


def cpu_times() -> tuple[float, float] | None:
    """(busy, total) CPU seconds of all cores since boot, from ``/proc/stat`` (busy: all but
    idle and iowait); None off Linux. The app's estimate samples it twice for the load now."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:8]
        ticks = os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None
    values = [float(v) for v in fields]
    total = sum(values)
    return (total - values[3] - values[4]) / ticks, total / ticks


def _busy_seconds() -> float | None:
    times = cpu_times()
    return None if times is None else times[0]
