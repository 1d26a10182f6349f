"""The audit as plain text for the terminal: counts, sizes, problems by file, verdict last."""

from __future__ import annotations

import unicodedata

from training.data.audit import AuditReport, Leak

_LIST_LIMIT = 20


def _listing(title: str, items: list[str]) -> list[str]:
    if not items:
        return []
    lines = [f"  {title} ({len(items)}):"]
    lines += [f"    {item}" for item in items[:_LIST_LIMIT]]
    if len(items) > _LIST_LIMIT:
        lines.append(f"    … and {len(items) - _LIST_LIMIT} more")
    return lines


def _leak_evidence(leak: Leak) -> str:
    if leak.kind == "exact":
        return "exact: identical pixels"
    return f"near: hash distance {leak.hash_distance}/64, pixel difference {leak.pixel_diff:.1f}"


def format_audit(report: AuditReport) -> str:
    """A plain-text report for the terminal: counts, sizes, problems by file, verdict last."""
    readable = report.readable()
    lines = [
        f"Dataset: {report.root}",
        f"Layout: {report.layout}; {len(report.classes)} class(es); {len(report.records)} "
        f"image file(s), {len(readable)} readable",
        "",
        "Images per class:",
    ]
    splits = list(report.counts)
    width = max([len("class"), *(len(c) for c in report.classes)])
    lines.append("  " + "class".ljust(width) + "".join(f"{s:>8}" for s in splits))
    for name in report.classes:
        row = "".join(f"{report.counts[s].get(name, 0):>8}" for s in splits)
        lines.append("  " + name.ljust(width) + row)
    sizes = report.size_stats
    lines += [
        "",
        f"Image sizes: width {sizes['width']['min']}–{sizes['width']['max']} (median "
        f"{sizes['width']['median']:g}), height {sizes['height']['min']}–"
        f"{sizes['height']['max']} (median {sizes['height']['median']:g})",
        "",
        "Problems:",
    ]
    problems = [
        *_listing("Unreadable files", [f"{rel}: {why}" for rel, why in report.unreadable]),
        *_listing("Identical images", [", ".join(g) for g in report.exact_duplicates]),
        *_listing("Near-duplicate images", [", ".join(g) for g in report.near_duplicates]),
        *_listing(
            "Leakage across splits",
            [
                f"{leak.original} ({leak.original_split}) ~ {leak.copy} ({leak.copy_split}) "
                f"[{_leak_evidence(leak)}]"
                for leak in report.leakage
            ],
        ),
        *_listing(
            "Same image in several classes", [", ".join(g) for g in report.cross_class_duplicates]
        ),
        *_listing("Empty class folders", report.empty_classes),
        *_listing("Skipped files", [f"{rel}: {why}" for rel, why in report.skipped]),
    ]
    lines += problems or ["  none found"]
    if report.ignored:
        lines.append(f"  ({len(report.ignored)} system/hidden file(s) ignored)")
    verdict = report.verdict
    lines += ["", f"Verdict: {'TRAINABLE' if verdict.trainable else 'NOT TRAINABLE'}"]
    lines += [f"  ✗ {reason}" for reason in verdict.reasons]
    lines += [f"  ! {warning}" for warning in verdict.warnings]
    return "\n".join(_printable(line) for line in lines)


def _printable(line: str) -> str:
    """Control characters in file and class names shown escaped (``\\n``, ``\\x1b``): a name
    must neither break the report's lines nor send escape sequences to the terminal."""
    return "".join(repr(c)[1:-1] if unicodedata.category(c) == "Cc" else c for c in line)
