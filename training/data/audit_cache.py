"""An audit read back instead of redone when no file of the dataset changed.

The audit reads, hashes and decodes every image (seconds per thousand photos), and every
``train``, ``check`` and ``search`` starts with it. A dataset nobody touched gives the same
report, so the report is stored in the cache under a key of what the scan sees of each file
without opening it: path, class, split, size, inode, and modification and change times in
nanoseconds (the test ``make`` and ``git`` rely on; the change time cannot be set back by a
program that rewrites a file). Any edited, added, removed or moved file gives a new key and a
fresh audit. The report is JSON, written to a temporary sibling and renamed.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Callable
from pathlib import Path

from training.data.audit import AuditReport, FileRecord, Leak, Verdict
from training.data.scan import ScannedDataset

AUDIT_CACHE_VERSION = 1
"""Bump when the audit's rules change, so reports written by older code are not reused."""


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
) -> AuditReport:
    """The stored report of these exact files, or ``audit(scanned)`` (then stored)."""
    key = scan_key(scanned) if cache_dir is not None else None
    if key is None:
        return audit(scanned)
    path = Path(cache_dir) / "audits" / f"{key}.json"
    report = _load(path)
    if report is None:
        report = audit(scanned)
        _save(report, path)
    return report


def _load(path: Path) -> AuditReport | None:
    try:
        raw = json.loads(path.read_text())
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
    except (OSError, ValueError, TypeError, KeyError):
        return None  # missing, from older code, or damaged: audit again


def _save(report: AuditReport, path: Path) -> None:
    temp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temp.write_text(json.dumps(report.to_dict()))
        os.replace(temp, path)
    except OSError:
        temp.unlink(missing_ok=True)  # a full disk costs the reuse, never the run
