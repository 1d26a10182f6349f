"""Content digests of caches: a cache is used only when its bytes are the ones written.

Checking a cache by its size passes one overwritten with zeros, or swapped with another cache of
the same size, and a run then trains on the wrong pixels or features without a word. So each
cache stores a digest of its content beside it when written, and a reader compares before use.

The digest is BLAKE2b over the length and at most 16 MiB of the content: all of it up to that
size, beyond it 256 blocks of 64 KiB spread evenly from the first byte to the last. On this
project's 2-core machine a full BLAKE2b of a 100 MB file took 0.3-0.4 s (a 1.5 GB image cache:
about 5 s at every run's start), the sampled one 0.05 s whatever the size. Sampling catches a
file replaced, zeroed or swapped, which is what the size check let through; damage confined to
bytes between samples goes unseen (a truncated or torn file is still caught by its size or its
format).
"""

from __future__ import annotations

import hashlib

import numpy as np

BLOCKS = 256
BLOCK = 1 << 16


def content_digest(*parts) -> str:
    """The digest of ``parts`` (bytes-like: bytes, a NumPy array or memory map) as one content."""
    views = [_flat(part) for part in parts]
    digest = hashlib.blake2b(digest_size=16)
    digest.update(str([len(v) for v in views]).encode())
    for view in views:
        for start in _sample_starts(len(view)):
            digest.update(view[start : start + BLOCK])
    return digest.hexdigest()


def _flat(part) -> memoryview:
    """``part``'s bytes as one flat view, without copying a contiguous array or map."""
    if isinstance(part, np.ndarray):
        return memoryview(np.ascontiguousarray(part).reshape(-1).view(np.uint8))
    return memoryview(part).cast("B")


def _sample_starts(size: int) -> range | list[int]:
    """Where the sampled blocks start: every block when the content is small."""
    if size <= BLOCKS * BLOCK:
        return range(0, size, BLOCK)
    last = size - BLOCK
    return [i * last // (BLOCKS - 1) for i in range(BLOCKS)]
