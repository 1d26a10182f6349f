"""A job's log without TensorFlow's C++ start-up lines.

TensorFlow and absl print a few lines from C++ before Python can lower their log level (the
``TF_CPP_MIN_LOG_LEVEL`` the CLIs set does not reach messages written before absl is initialised):
oneDNN and CPU-instruction notices, "Could not find cuda drivers", "failed call to cuInit". They say
nothing about the job and bury its first real line, so the job wrapper drops them; every other
line, progress bars included, is copied as it arrives.
"""

from __future__ import annotations

import os
import re

# One pattern per kind of notice, anchored at the start of the line (absl's "I0000 00:00:…  123
# file.cc:45] " prefix, or TensorFlow's older "2024-01-01 00:00:00.000: I tensorflow/…cc:45] ").
_PREFIX = r"(?:[IWE]\d{4} [\d:.]+\s+\d+ |\d{4}-\d\d-\d\d [\d:.]+: [IWE] \S*?)"
NOISE = re.compile(
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    rf"|{_PREFIX}(?:port|cudart_stub|cpu_feature_guard|computation_placer)\.cc:\d+\] "
    rf"|{_PREFIX}\w+\.cc:\d+\] (?:.*failed call to cuInit|Unable to register cu\w+ factory"
    r"|TF-TRT Warning)"
    r"|To enable the following instructions: .*rebuild TensorFlow with the appropriate compiler"
)


def is_noise(line: str) -> bool:
    return NOISE.match(line) is not None


def copy_quietly(source: int, target: int, chunk: int = 65536) -> None:
    """Copy ``source`` to ``target`` (file descriptors) until end of file, minus noise lines.

    Whole lines are checked; a progress bar's carriage-return updates are passed on at once
    (noise lines have none), so the log stays live during a long epoch.
    """
    pending = b""
    while data := os.read(source, chunk):
        pending += data
        *lines, pending = pending.split(b"\n")
        kept = [line + b"\n" for line in lines if not _noise(line)]
        if b"\r" in pending:
            cut = pending.rindex(b"\r") + 1
            kept.append(pending[:cut])
            pending = pending[cut:]
        _write(target, b"".join(kept))
    if pending and not _noise(pending):
        _write(target, pending)


def _noise(line: bytes) -> bool:
    return is_noise(line.decode("utf-8", errors="replace").rstrip("\r"))


def _write(target: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(target, view) :]
