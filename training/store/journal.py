"""A run folder's files read as files anyone could have edited or replaced.

``runs repair`` replays ``events.jsonl`` into the index, so each line is checked before it is
used: a JSON object whose known events hold fields of the right types, integers SQLite can store
and a person can count to, finite numbers where a NaN would mean nothing. A bad line is skipped
with the file and line named, never half-replayed. Files are opened without following symbolic
links, and only regular files of a bounded size are read: a run folder is this home's record,
not a pointer to another home's run or to ``/etc/passwd``.
"""

from __future__ import annotations

import json
import math
import os
import stat
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

MAX_BYTES = 512 * 2**20
"""The most of a journal read into memory (a long search's journal is a few MiB)."""
MAX_COUNT = 2**31 - 1
"""Epochs, stages, trial counts and pids above this are damage, not a record."""
NOFOLLOW = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
# The record's vocabulary, here so the journal is checked against what the store writes.
KINDS = ("train", "search", "check")
STATUSES = ("running", "completed", "failed", "interrupted", "cancelled")
TRIAL_STATUSES = ("completed", "failed", "invalid")

Check = Callable[[Any], bool]


class UnreadableFile(ValueError):
    """A file of a run folder that is not read: a link, not a regular file, or too big."""


def read_text(path: Path, limit: int = MAX_BYTES) -> str:
    """The file's text, without following a symbolic link (the open refuses one, so a link
    swapped in after a check is refused too); undecodable bytes become U+FFFD."""
    if path.is_symlink():
        raise UnreadableFile(f"{path}: a symbolic link, not followed")
    try:
        fd = os.open(path, os.O_RDONLY | NOFOLLOW)
    except OSError as error:
        raise UnreadableFile(f"{path}: {error.strerror or error}") from None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise UnreadableFile(f"{path}: not a regular file")
        if info.st_size > limit:
            raise UnreadableFile(f"{path}: {info.st_size} bytes, more than the {limit} read")
        return f.read(limit).decode("utf-8", errors="replace")


def _maybe(check: Check) -> Check:
    return lambda value: value is None or check(value)


def _of(*types: type) -> Check:
    return lambda value: type(value) in types  # so True is not an int


def _one_of(values: tuple[str, ...]) -> Check:
    return lambda value: isinstance(value, str) and value in values


def _count(value: Any) -> bool:
    return type(value) is int and 0 <= value <= MAX_COUNT


def _pid(value: Any) -> bool:
    return _count(value) and value > 0


def _finite(value: Any) -> bool:
    """A number SQLite can store as one: an int within 64 bits, or a finite float (the writers
    store a NaN score as None)."""
    if type(value) is int:
        return abs(value) < 2**63
    return type(value) is float and math.isfinite(value)


def _time(value: Any) -> bool:
    """An ISO 8601 time with its zone: the index sorts and subtracts them."""
    try:
        return isinstance(value, str) and datetime.fromisoformat(value).tzinfo is not None
    except ValueError:
        return False


def _objects(value: Any) -> bool:
    return type(value) is list and all(type(item) is dict for item in value)


TEXT, OBJECT = _of(str), _of(dict)
JSON_NAMES = {list: "an array", str: "a string", int: "a number", float: "a number"}
JSON_NAMES |= {bool: "true or false", type(None): "null"}
FIELDS: dict[str, dict[str, Check]] = {
    "created": {
        "kind": _maybe(_one_of(KINDS)),
        "label": _maybe(TEXT),
        "pid": _maybe(_pid),
        "fingerprint": _maybe(TEXT),
        "dataset": _maybe(TEXT),
        "created_at": _maybe(_time),
    },
    "status": {
        "status": _one_of(STATUSES),
        "pid": _maybe(_pid),
        "summary": _maybe(OBJECT),
        "error": _maybe(TEXT),
    },
    "completed": {"summary": _maybe(OBJECT)},
    "epoch": {"phase": TEXT, "epoch": _count, "metrics": OBJECT},
    "findings": {"findings": _objects},
    "trial": {
        "trial_id": TEXT,
        "stage": _count,
        "status": _one_of(TRIAL_STATUSES),
        "hyperparameters": OBJECT,
        "score": _maybe(_finite),
        "history": _of(list),
        "seconds": _finite,
        "error": _maybe(TEXT),
    },
    "stage": {"stage": _count, "space": OBJECT, "trials": _count},
}
"""What replaying each event reads from it; other events are kept but only their time is read."""


def _problem(event: Any, checked: bool) -> str | None:
    """Why a parsed line is not an event repair may replay; None when it is."""
    if type(event) is not dict:
        return f"{JSON_NAMES.get(type(event), 'a value')}, not an object"
    if not checked:
        return None
    name = event.get("event")
    if not isinstance(name, str):
        return "an object with no event name"
    if not _time(event.get("time")):
        return f"event {name!r:.40}: its time {event.get('time')!r:.40} is not a time with a zone"
    bad = [field for field, check in FIELDS.get(name, {}).items() if not check(event.get(field))]
    if bad:
        return f"event {name!r}: {', '.join(bad)} missing, of the wrong type or out of range"
    return None


def parse(text: str, path: Path, checked: bool = True) -> tuple[list[dict], list[str]]:
    """The lines that are events, oldest first, and the others as ``PATH line N: why``.

    ``checked=False`` only drops lines that are not JSON objects (what readers other than repair
    need); a line torn by a crash is one of those either way."""
    events, problems = [], []
    for number, line in enumerate(text.split("\n"), 1):  # numbered as `sed -n` numbers them
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except (ValueError, RecursionError) as error:  # bad JSON, 5,000 digits, deep nesting
            why = f"not JSON ({str(error)[:80]})"
        else:
            if (why := _problem(event, checked)) is None:
                events.append(event)
                continue
        problems.append(f"{path} line {number}: {why}")
    return events, problems
