"""Which program a batch of heads trains in: plain arithmetic, no Keras.

On a CPU, compiling a population's program costs about a second per section; training one head
for an epoch costs milliseconds (no hidden layer) to a few tenths of a second (512 units). So a
batch trains in the layout that costs least in all: an already compiled one (idle heads and
masked units compute as much as live ones, and a head too many takes another round) or a new
one, exact (a section per width bucket) or with narrow buckets merged into wider sections (less
to compile, more to compute). Both costs are timed on the machine as the search runs; until
then, :data:`PRIOR_SECONDS_PER_WORK` and :data:`PRIOR_SECTION_COMPILE_S` stand in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from tuner.heads import MAX_UNITS
from tuner.population_program import Layout

MIN_BUCKET = 16
"""The narrowest hidden bucket: narrower heads are masked inside it."""

PRIOR_SECONDS_PER_WORK = 4e-9
"""Seconds per unit of :func:`head_work` per step before any is timed (2 CPU cores)."""

PRIOR_SECTION_COMPILE_S = 1.5
"""Seconds to compile a section before any is timed (2 CPU cores)."""

Rounds = list[list[list[int]]]
"""Per round (one pass of the program over the epochs), per section, the heads it trains."""


def width_bucket(units: int) -> int:
    """The hidden width a head of ``units`` trains in: 0 (no hidden layer), else the power of
    two at or above it (at least :data:`MIN_BUCKET`): at most twice the work of its own width."""
    if units > MAX_UNITS:
        raise ValueError(f"Expected head_units <= {MAX_UNITS}. Received: {units}.")
    if units <= 0:
        return 0
    return min(MAX_UNITS, max(MIN_BUCKET, 1 << (int(units) - 1).bit_length()))


def pack(layout: Layout, buckets: list[int]) -> Rounds | None:
    """Place each head (by its bucket) in the narrowest section wide enough with a free slot,
    the widest heads first, in as many rounds as it takes; None if a head fits no section (a
    head without a hidden layer fits only a section without one)."""
    order = sorted(range(len(buckets)), key=lambda i: -buckets[i])
    fits = {i: [s for s, (w, _) in enumerate(layout) if _hosts(w, buckets[i])] for i in order}
    if any(not sections for sections in fits.values()):
        return None
    rounds: Rounds = []
    waiting = order
    while waiting:
        slots = [[] for _ in layout]
        later = []
        for i in waiting:
            free = [s for s in fits[i] if len(slots[s]) < layout[s][1]]
            (slots[free[0]] if free else later).append(i)
        rounds.append(slots)
        waiting = later
    return rounds


def _hosts(width: int, bucket: int) -> bool:
    return width == bucket if bucket == 0 else width >= bucket


def head_work(width: int, features: int, classes: int, batch: int) -> float:
    """What one head's epoch costs, in units of values touched per step: its weights (the
    optimizer reads and writes each several times) and its dropped-out input batch."""
    weights = features * width + width * classes if width else features * classes
    return weights + batch * features


def groupings(buckets: Iterable[int], limit: Callable[[int], int]) -> list[Layout]:
    """Every layout that trains ``buckets`` with each hidden bucket in its own section or merged
    into a wider one (consecutive buckets share the widest's section): fewer sections compile
    faster, exact ones compute less."""
    counts: dict[int, int] = {}
    for bucket in buckets:
        counts[bucket] = counts.get(bucket, 0) + 1
    hidden = sorted(b for b in counts if b)
    linear = ((0, min(counts[0], limit(0))),) if 0 in counts else ()
    layouts = []
    for cuts in range(2 ** max(0, len(hidden) - 1)):
        sections, group = [], []
        for i, bucket in enumerate(hidden):
            group.append(bucket)
            if i == len(hidden) - 1 or cuts >> i & 1:
                heads = sum(counts[b] for b in group)
                sections.append((bucket, min(heads, limit(bucket))))
                group = []
        layouts.append(linear + tuple(sections))
    return layouts


def compile_seconds(layout: Layout, per_section: float) -> float:
    """What compiling ``layout`` costs: about a fixed half section plus one per section."""
    return per_section * (len(layout) + 0.5)


def choose(
    buckets: list[int],
    compiled: Iterable[Layout],
    limit: Callable[[int], int],
    epochs: int,
    epoch_s: Callable[[Layout], float],
    per_section_s: float,
) -> tuple[Layout, Rounds]:
    """The layout to train ``buckets`` in and how they are packed: the cheapest of the
    compiled layouts (their epochs) and the new ones of :func:`groupings` (their epochs and
    their compilation). ``epoch_s`` gives the seconds of one epoch of a layout and
    ``per_section_s`` a section's compilation."""
    compiled = set(compiled)
    best: tuple[float, Layout, Rounds] | None = None
    for layout in [*compiled, *groupings(buckets, limit)]:
        rounds = pack(layout, buckets)
        if rounds is None:
            continue
        seconds = len(rounds) * epochs * epoch_s(layout)
        if layout not in compiled:
            seconds += compile_seconds(layout, per_section_s)
        if best is None or seconds < best[0]:
            best = (seconds, layout, rounds)
    assert best is not None  # the first grouping holds every bucket
    return best[1], best[2]


def layout_work(layout: Layout, features: int, classes: int, batch: int) -> float:
    """The :func:`head_work` of every head of ``layout``, per step."""
    return sum(heads * head_work(w, features, classes, batch) for w, heads in layout)
