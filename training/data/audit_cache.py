"""An audit read back instead of redone when no file of the dataset changed.

The audit reads, hashes and decodes every image (seconds per thousand photos), and every
``train``, ``check`` and ``search`` starts with it. A dataset nobody touched gives the same
report, so the report is stored in the cache under a key of what the scan sees of each file
without opening it: path, class, split, size, inode, and modification and change times in
nanoseconds (the test ``make`` and ``git`` rely on; the change time cannot be set back by a
program that rewrites a file). Any edited, added, removed or moved file gives a new key and a
fresh audit. The report is JSON, written to a temporary sibling and renamed, after a header line
with its key and content digest: a report that is damaged (zeroed, torn) or another key's (a file
moved or swapped) is not trusted but redone, and a line says so.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable
from pathlib import Path

from training.atomic import write_text
from training.data.audit import AuditReport, FileRecord, Leak, Verdict
from training.data.scan import ScannedDataset
from training.digest import content_digest
from training.errors import WriteError

AUDIT_CACHE_VERSION = 2
"""Bump when the audit's rules change, so reports written by older code are not reused."""
FOLDER = "audits"
"""Reports are <cache_dir>/audits/<key>.json, in the store's cache_dir() (see data.cache)."""


def scan_key(scanned: ScannedDataset) -> str | None:
    """The key of a scanned dataset's files as they are on disk; None if one cannot be stat'ed."""
    digest = hashlib.sha256()
    head = {
        "version": AUDIT_CACHE_VERSION,
        "root": str(Path(scanned.root).resolve()),
        "layout": scanned.layout,
        "classes": scanned.classes,
        "ignored": scanned.ignored,
        "skipped": scanned.skipped,
        "empty": scanned.empty_classes,
        "warnings": scanned.warnings,
    }
    digest.update(json.dumps(head, sort_keys=True).encode())
    for file in scanned.files:
        try:
            st = file.path.stat()
        except OSError:
            return None
        digest.update(
            f"\n{file.rel}|{file.label}|{file.split}|{st.st_size}|{st.st_ino}|"
            f"{st.st_mtime_ns}|{st.st_ctime_ns}".encode()
        )
    return digest.hexdigest()[:24]


def cached_audit(
    scanned: ScannedDataset,
    cache_dir: Path | None,
    audit: Callable[[ScannedDataset], AuditReport],
    echo: Callable[[str], None] = print,
) -> AuditReport:
    """The stored report of these exact files, or ``audit(scanned)`` (then stored)."""
    key = scan_key(scanned) if cache_dir is not None else None
    if key is None:
        return audit(scanned)
    path = Path(cache_dir) / FOLDER / f"{key}.json"
    report = _load(path, key, echo) if path.exists() else None
    if report is None:
        report = audit(scanned)
        body = json.dumps(report.to_dict())
        header = json.dumps({"key": key, "digest": content_digest(body.encode())})
        with contextlib.suppress(WriteError):  # a full disk costs the reuse, never the run
            write_text(path, f"{header}\n{body}")
    return report


def _load(path: Path, key: str, echo: Callable[[str], None]) -> AuditReport | None:
    """The report stored at ``path`` if it is whole and ``key``'s; else None, said in a line."""
    problem = "cannot be read"
    try:
        header, body = path.read_bytes().split(b"\n", 1)
        stored = json.loads(header)
        if stored["key"] != key:
            problem = f"holds another dataset's report ({stored['key']})"
        elif stored["digest"] != content_digest(body):
            problem = "does not match its content digest (overwritten or replaced)"
        else:
            return _report(json.loads(body))
    except (OSError, ValueError, TypeError, KeyError):
        pass  # damaged, or from older code
    echo(f"warning: the stored audit {path} {problem}; auditing the images again.")
    return None


def _report(raw: dict) -> AuditReport:
    """An ``AuditReport`` from its ``to_dict()``."""
    records = [FileRecord(**{**r, "path": Path(r["path"])}) for r in raw.pop("records")]
    return AuditReport(
        **{
            **raw,
            "root": Path(raw["root"]),
            "records": records,
            "unreadable": [tuple(u) for u in raw["unreadable"]],
            "leakage": [Leak(*leak) for leak in raw["leakage"]],
            "skipped": [tuple(s) for s in raw["skipped"]],
            "verdict": Verdict(**raw["verdict"]),
        }
    )
