"""Helpers every page uses: the store, run and dataset pickers, findings drawn by status."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import streamlit as st

from app.analysis import percent, safe_image
from app.roots import data_roots, within_roots
from training.babysit.advice import fresh_action, in_app_words, render
from training.babysit.findings import format_value
from training.errors import HomeError, StoreIndexError
from training.store import Run, RunStore, shown_status
from training.store.repair import repair

STATUS_ICON = {
    "ok": ":material/check_circle:",
    "warn": ":material/warning:",
    "fail": ":material/error:",
}
FOLDERS_FILE = "folders.json"


def store() -> RunStore:
    """The run store at ``$BABYSITTER_HOME`` (read each rerun: cheap, and tests change it).

    A home folder that cannot be used stops the page with one error panel saying how to fix it;
    a lost or damaged run index also offers to rebuild it from the run folders.
    """
    try:
        opened = RunStore()
    except StoreIndexError as error:
        st.error(str(error), icon=":material/storage:")
        if st.button("Rebuild the run index from the run folders", key="repair_index"):
            report = repair()
            st.session_state["repaired"] = f"Indexed {len(report.rebuilt)} run(s)."
            st.rerun()
        st.stop()
    except HomeError as error:
        st.error(str(error), icon=":material/folder_off:")
        st.stop()
    if repaired := st.session_state.pop("repaired", None):
        st.success(repaired, icon=":material/storage:")
    return opened


def run_label(run: Run, with_status: bool = True) -> str:
    if not with_status:
        return f"{run.id} · {run.kind}"
    status = shown_status(run)
    return f"{run.id} · {run.kind} · {status}"  # plain text: options render no icons


def pick_run(
    runs: list[Run],
    key: str,
    label: str = "Run",
    shared: str = "run_id",
    with_status: bool = True,
) -> Run | None:
    """A run select box that starts at the run chosen on another page (``session_state``).

    ``with_status=False`` where a live part of the page shows the status: a browser keeps the
    box's label while only that part refreshes, so a status in it would go stale.
    """
    if not runs:
        return None
    ids = [r.id for r in runs]
    wanted = st.session_state.get(shared)
    index = ids.index(wanted) if wanted in ids else 0
    chosen = st.selectbox(
        label,
        ids,
        index=index,
        key=key,
        format_func=lambda i: run_label(runs[ids.index(i)], with_status),
    )
    st.session_state[shared] = chosen
    return runs[ids.index(chosen)]


def show_findings(
    findings: list[dict[str, Any]],
    only_problems: bool = False,
    settings: Mapping[str, Any] | None = None,
) -> None:
    """Findings as coloured boxes (fail red, warn orange, ok green), newest checks last.

    Advice reads in the app's words (form fields, the run's value → the proposal) from the
    run's ``settings``; a suggested change the run already uses is not offered.
    """
    shown = [f for f in findings if not only_problems or f.get("status") != "ok"]
    if not shown:
        st.caption("No findings yet." if not findings else "All checks ok.")
        return
    for f in shown:
        status = f.get("status", "ok")
        text = (
            f"**{f.get('check')}** — measured {format_value(f.get('measured'))} "
            f"(expected {format_value(f.get('expected'))})"
        )
        if status != "ok" and f.get("advice"):
            text += f"\n\n{in_app_words(f['advice'], settings)}"
        explained = (f.get("evidence") or {}).get("explained_by")
        if explained:
            before = (f.get("evidence") or {}).get("status_before", "warn")
            text += f"\n\n_Was {before}; explained by {explained} (the diagnosis above)._"
        change = render(fresh_action(f.get("action"), settings), style="app")
        if change:
            text += f"\n\n**Suggested change:** {change}"
        box = {"ok": st.success, "warn": st.warning, "fail": st.error}.get(status, st.info)
        box(text, icon=STATUS_ICON.get(status))


def show_diagnosis(diagnosis: Mapping[str, Any] | None, settings=None) -> None:
    """The run's one diagnosis (root cause first) above its findings, with one or two actions
    in the app's words."""
    if not diagnosis:
        return
    text = f"**Diagnosis.** {in_app_words(diagnosis.get('sentence', ''), settings)}"
    for action in diagnosis.get("actions") or []:
        text += f"\n\n→ {in_app_words(action, settings)}"
    box = st.success if diagnosis.get("cause") is None else st.warning
    if diagnosis.get("status") == "fail":
        box = st.error
    box(text)


def _folders_path(s: RunStore) -> Path:
    return s.datasets_dir() / FOLDERS_FILE


def remembered_folders(s: RunStore) -> list[str]:
    """Folders named before, checked again against the data roots (the file is only a list)."""
    path = _folders_path(s)
    try:
        named = [str(p) for p in json.loads(path.read_text(encoding="utf-8"))]
    except (OSError, ValueError, TypeError):
        return []
    roots = data_roots(s.home)
    return [str(p) for p in (within_roots(n, roots) for n in named) if p is not None]


def remember_folder(s: RunStore, folder: Path) -> None:
    folders = remembered_folders(s)
    if str(folder) not in folders:
        folders.append(str(folder))
        _folders_path(s).write_text(json.dumps(folders, indent=1), encoding="utf-8")


def known_datasets(s: RunStore) -> list[str]:
    """Datasets to reuse: unpacked uploads, folders named before, and those runs trained on."""
    found: list[str] = []
    base = s.datasets_dir()
    for marker in sorted(base.glob("*/.complete")):
        root = marker.parent / marker.read_text(encoding="utf-8").strip()
        found.append(str(root.resolve()))
    found += remembered_folders(s)
    found += [r.dataset for r in s.list_runs()]
    roots = data_roots(s.home)
    unique = []
    for item in found:
        inside = within_roots(item, roots)  # a run's dataset may lie anywhere the CLI was given
        if inside is not None and str(inside) not in unique and inside.is_dir():
            unique.append(str(inside))
    return unique


def dataset_label(path: str) -> str:
    p = Path(path)
    return f"{p.name or p} — {p}"


def dataset_picker(s: RunStore, key: str, empty_hint: str) -> str:
    """A select box over :func:`known_datasets`, remembering the choice across pages."""
    datasets = known_datasets(s)
    if not datasets:
        st.info(empty_hint)
        st.stop()
    wanted = st.session_state.get("dataset")
    choice = st.selectbox(
        "Dataset",
        datasets,
        index=datasets.index(wanted) if wanted in datasets else 0,
        format_func=dataset_label,
        key=key,
    )
    st.session_state["dataset"] = choice
    return choice


def show_label_suspects(
    finding: Mapping[str, Any] | None, root: str | Path, columns: int = 4
) -> None:
    """ "Labels worth a second look": a ``label_noise`` finding's named labels (nothing when it
    named none, which it does unless the features are good enough to tell a wrong label from
    one of their own mistakes; the reason is then one caption): each training image with its
    given → predicted class, the confidence and why.

    ``root`` is the dataset the run read (``run.dataset``); the suspects' files are relative to
    it, and one that resolves outside it or no longer exists is captioned without a thumbnail.
    Under a subheader when the finding warns or fails; folded away when it is ok.
    """
    evidence = (finding or {}).get("evidence") or {}
    suspects = evidence.get("suspects") or []
    if not suspects:
        if evidence.get("suspects_reason"):
            st.caption(evidence["suspects_reason"])
        return
    total = evidence.get("suspects_total") or len(suspects)
    title = f"Labels worth a second look ({total})"
    shown = f"The {len(suspects)} likeliest of {total}" if total > len(suspects) else "The"
    note = (
        f"{shown} training images whose label heads that never saw it contradict most "
        "confidently, likeliest first (the share of wrong labels is label_noise's measurement). "
        "If a label is wrong, move the image to its class folder and train again; a right one "
        "stays where it is."
    )
    if finding.get("status", "ok") == "ok":
        box = st.expander(title)
    else:
        st.subheader(title)
        box = st.container()
    with box:
        st.caption(note)
        cols = st.columns(columns)
        for i, suspect in enumerate(suspects):
            rel = suspect.get("file")
            with cols[i % columns]:
                image = safe_image(Path(root), rel) if rel else None
                if image is not None:
                    st.image(str(image), width=128)
                name = rel or f"training row {suspect.get('row')}"
                confidence = suspect.get("confidence")
                sure = f" ({percent(confidence)})" if isinstance(confidence, int | float) else ""
                st.caption(
                    f"{name}: **{suspect.get('given')}** → **{suspect.get('predicted')}**{sure}"
                    + (f" · rank {suspect['rank']}" if suspect.get("rank") else "")
                )
        more = evidence.get("suspects_more") or 0
        if more:
            st.caption(f"…and {more} more (`--json` lists the count; the ranks go on).")
