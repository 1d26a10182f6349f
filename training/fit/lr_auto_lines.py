"""What ``--lr auto`` picked, in words: the CLI's report and the app's Results say the same line.

Apart from ``lr_auto`` so that a page reading a run's summary does not import Keras.
"""

from __future__ import annotations

from typing import Any


def auto_line(name: str, record: dict[str, Any]) -> str:
    """``lr auto → 0.03 (window 2.2e-02 … 7.4e-02)``, or the default with the reason."""
    if record.get("window"):
        low, high = record["window"]
        share = "a tenth of the head's rate; its " if name == "finetune_lr" else ""
        return f"{name} auto → {record['rate']:g} ({share}window {low:.1e} … {high:.1e})"
    return f"{name} auto → {record['rate']:g}, the default: {record.get('fallback', 'no window')}"


def auto_lines(summary: dict[str, Any]) -> list[str]:
    """The ``auto`` lines of a run's summary, for the CLI's report after the run."""
    return [
        auto_line(name, summary[f"{name}_auto"])
        for name in ("lr", "finetune_lr")
        if isinstance(summary.get(f"{name}_auto"), dict)
    ]
