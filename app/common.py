"""Helpers every page uses: the store, run and dataset pickers, findings drawn by status."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import streamlit as st

from app.analysis import finding_settings, percent, safe_image
from app.apply import applied_by, apply_finding
from app.roots import data_roots, within_roots
from training import jobs
from training.babysit.advice import fresh_action, in_app_words, render
from training.babysit.diagnosis import reconcile
from training.babysit.findings import format_value
from training.data.scan import COMPLETE_MARKER
from training.errors import BabysitterError, HomeError, StoreIndexError
from training.store import Run, RunStore, shown_status
from training.store.repair import repair
from training.store.rows import unreadable_message

STATUS_ICON = {
    "ok": ":material/check_circle:",
    "warn": ":material/warning:",
    "fail": ":material/error:",
}


def store() -> RunStore:
    """The run store at ``$BABYSITTER_HOME`` (read each rerun: cheap, and tests change it).

    A home folder that cannot be used stops the page with one error panel saying how to fix it;
    a lost or damaged run index also offers to rebuild it from the run folders.
    """
    try:
        opened = RunStore()
    except StoreIndexError as error:
        st.error(str(error), icon=":material/storage:")
        _offer_repair("repair_index")
        st.stop()
    except HomeError as error:
        st.error(str(error), icon=":material/folder_off:")
        st.stop()
    if repaired := st.session_state.pop("repaired", None):
        text, skipped = repaired
        if skipped:
            st.warning(f"{text} Skipped:\n\n" + "\n".join(f"- `{line}`" for line in skipped))
        else:
            st.success(text, icon=":material/storage:")
    return opened


def _offer_repair(key: str) -> None:
    """``runs repair`` as a button; what it did shows on the next run (see ``store``)."""
    if st.button("Rebuild the run index from the run folders", key=key):
        report = repair()
        st.session_state["repaired"] = (f"Indexed {len(report.rebuilt)} run(s).", report.skipped)
        st.rerun()


def warn_unreadable(s: RunStore) -> None:
    """One warning on a page that lists runs when rows of the index cannot be read: they are
    left out of the listing, and the page says so instead of "No runs yet"."""
    if unreadable := s.unreadable_runs():
        st.warning(unreadable_message(unreadable, s.db_path), icon=":material/storage:")
        _offer_repair("repair_rows")


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


PHASES = {"head": "Head", "finetune": "Fine-tune"}
"""The phase a finding measured, as its title names it ("Fine-tune: loss flat")."""
ORDER = {"fail": 0, "warn": 1, "ok": 3}
OVERRULED = (
    "Its change is not offered: {check} moves the same setting the other way, and comes first."
)


def finding_title(finding: Mapping[str, Any]) -> str:
    """``loss_flat`` measured in phase 2 reads "Fine-tune: loss flat"; a check of the whole
    run reads its name in words."""
    words = str(finding.get("check", "")).replace("_", " ")
    phase = PHASES.get((finding.get("evidence") or {}).get("phase"))
    return f"{phase}: {words}" if phase else words[:1].upper() + words[1:]


def ordered(
    findings: list[dict[str, Any]], diagnosis: Mapping[str, Any] | None
) -> list[dict[str, Any]]:
    """Root cause first, then failures, warnings, the findings it explains (folded), passes."""
    cause = (diagnosis or {}).get("check")

    def rank(f: Mapping[str, Any]) -> tuple[int, int]:
        if cause and f.get("check") == cause and f.get("status") != "ok":
            return (-1, 0)
        if (f.get("evidence") or {}).get("explained_by"):
            return (2, 0)
        return (ORDER.get(f.get("status", "ok"), 3), 0)

    return sorted(findings, key=rank)


def show_findings(
    findings: list[dict[str, Any]],
    only_problems: bool = False,
    settings: Mapping[str, Any] | None = None,
    apply_to: Run | None = None,
) -> None:
    """Findings as coloured boxes (fail red, warn orange, ok green), each titled with its phase.

    Advice reads in the app's words (form fields, the run's value → the proposal) from the
    run's ``settings``; a suggested change the run already uses is not offered. With
    ``apply_to`` (a finished train or search run) a finding's change gets a button that starts
    the next run with it (:func:`apply_button`).
    """
    shown = [f for f in findings if not only_problems or f.get("status") != "ok"]
    if not shown:
        st.caption("No findings yet." if not findings else "All checks ok.")
        return
    for i, f in enumerate(shown):
        status = f.get("status", "ok")
        text = (
            f"**{finding_title(f)}** — measured {format_value(f.get('measured'))} "
            f"(expected {format_value(f.get('expected'))})"
        )
        if status != "ok" and f.get("advice"):
            text += f"\n\n{in_app_words(f['advice'], settings)}"
        overruled = (f.get("evidence") or {}).get("overruled_by")
        if overruled:
            text += f"\n\n_{OVERRULED.format(check=overruled)}_"
        explained = (f.get("evidence") or {}).get("explained_by")
        if explained:
            before = (f.get("evidence") or {}).get("status_before", "warn")
            text += f"\n\n_Was {before}; explained by {explained} (the diagnosis above)._"
        change = render(fresh_action(f.get("action"), settings), style="app")
        if change:
            text += f"\n\n**Suggested change:** {change}"
        box = {"ok": st.success, "warn": st.warning, "fail": st.error}.get(status, st.info)
        box(text, icon=STATUS_ICON.get(status))
        if change and apply_to is not None:
            apply_button(apply_to, f, settings, i)


def apply_button(run: Run, finding: Mapping[str, Any], settings, index: int) -> None:
    """The finding's change as the next run: the exact command, then a button that starts it
    as a job (once, however often it is clicked) and opens Monitor on it."""
    applied = apply_finding(run.kind, run.config, run.id, finding, settings)
    if applied is None:
        return
    st.code(applied.command, language="bash", wrap_lines=True)
    key = f"apply-{run.id}-{finding.get('check')}-{index}"
    if not st.button(applied.button, key=key, icon=":material/replay:"):
        return
    started = st.session_state.setdefault("applied", {})
    if key not in started:
        try:
            started[key] = jobs.start_job(store(), applied.args).id
        except BabysitterError as error:
            st.error(str(error))
            return
    st.session_state["job_id"] = st.session_state["follow_job"] = started[key]
    st.switch_page("views/monitor.py")


def show_origin(s: RunStore, run: Run) -> None:
    """Where a run came from ("From run X, finding Y") and which runs applied its findings."""
    source, _, check = str((run.config or {}).get("origin") or "").partition(":")
    if source:
        st.info(f"From run `{source}`, finding **{check}**.", icon=":material/call_split:")
    later = applied_by(s.list_runs(), run.id)
    if later:
        said = ", ".join(f"`{rid}` (finding **{c}**)" for rid, c in later)
        st.info(f"Applied in run {said}.", icon=":material/call_merge:")


def show_run_findings(
    s: RunStore, run: Run, findings: list[dict[str, Any]], exclude: Iterable[str] = ()
) -> list[dict[str, Any]]:
    """A run's findings read as its diagnosis: the root cause first, the findings it explains
    folded under it, every change appliable once the run has finished. Returns those shown."""
    settings = finding_settings(s, run)
    reconciled, diagnosis = reconcile(findings, run.config)
    show_origin(s, run)
    show_diagnosis((run.summary or {}).get("diagnosis") or diagnosis, settings)
    skip = set(exclude)
    items = ordered([f.to_dict() for f in reconciled if f.check not in skip], diagnosis)
    finished = run.status != "running" and run.kind in ("train", "search")
    show_findings(items, settings=settings, apply_to=run if finished else None)
    return items


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


def has_results(run: Run) -> bool:
    """Whether Results can show the run: a train or search run that completed (a gate, or a run
    cut off, has only its curves and findings, which Monitor shows)."""
    return run.status == "completed" and run.kind in ("train", "search")


def _folders_path(s: RunStore) -> Path:
    return s.dataset_list_file("folders")


def _read_json(path: Path, default: Any) -> Any:
    """One of the datasets folder's small JSON files, or ``default`` when it is missing or
    damaged: they only name and list datasets, so losing one never loses data."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return default
    return value if isinstance(value, type(default)) else default


def _write_json(path: Path, value: Any) -> None:
    """Write whole or not at all: another session may read the file at the same moment."""
    temp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")  # sessions are threads
    temp.write_text(json.dumps(value, indent=1), encoding="utf-8")
    os.replace(temp, path)


def remembered_folders(s: RunStore) -> list[str]:
    """Folders named before, checked again against the data roots (the file is only a list)."""
    named = _read_json(_folders_path(s), [])
    roots = data_roots(s.home)
    return [str(p) for p in (within_roots(str(n), roots) for n in named) if p is not None]


def remember_folder(s: RunStore, folder: Path) -> None:
    """List a server folder in the pickers; naming it again undoes an earlier Forget."""
    folders = remembered_folders(s)
    if str(folder) not in folders:
        folders.append(str(folder))
        _write_json(_folders_path(s), folders)
    _set_forgotten(s, str(folder), False)


def remember_upload(s: RunStore, root: str, name: str) -> None:
    """Name an unpacked upload as the user knows it ("pets.zip" → "pets"): its folder is named
    by a hash of the archive. Uploading it again undoes an earlier Forget."""
    names = dataset_names(s)
    names[root] = name
    _write_json(s.dataset_list_file("names"), names)
    _set_forgotten(s, root, False)


def dataset_names(s: RunStore) -> dict[str, str]:
    """The uploads' names by dataset root (what :func:`remember_upload` wrote)."""
    return {str(k): str(v) for k, v in _read_json(s.dataset_list_file("names"), {}).items()}


def forgotten_datasets(s: RunStore) -> set[str]:
    """Datasets left out of the pickers although a run trained on them (the runs stay)."""
    return {str(p) for p in _read_json(s.dataset_list_file("forgotten"), [])}


def _set_forgotten(s: RunStore, path: str, forgotten: bool) -> None:
    listed = forgotten_datasets(s)
    if (path in listed) != forgotten:
        changed = listed | {path} if forgotten else listed - {path}
        _write_json(s.dataset_list_file("forgotten"), sorted(changed))


def forget_dataset(s: RunStore, path: str) -> None:
    """Take a dataset out of the pickers and leave its files alone: out of the remembered
    folders, and on the forgotten list so that the runs that read it do not bring it back."""
    folders = remembered_folders(s)
    if path in folders:
        _write_json(_folders_path(s), [f for f in folders if f != path])
    _set_forgotten(s, path, True)


def unpacked_copy(s: RunStore, path: str | Path) -> Path | None:
    """The folder an archive was unpacked into when ``path`` lies in one (its ``.complete``
    marker says so): the app made that copy, so it may delete it. None for any other folder,
    whose files the app never touches."""
    base = s.datasets_dir().resolve()
    try:
        parts = Path(path).resolve().relative_to(base).parts
    except (OSError, ValueError):
        return None
    top = base / parts[0] if parts else None
    return top if top is not None and (top / COMPLETE_MARKER).is_file() else None


def delete_unpacked(s: RunStore, path: str) -> bool:
    """Delete the unpacked copy ``path`` lies in, and its name; False when it is not one."""
    top = unpacked_copy(s, path)
    if top is None:
        return False
    (top / COMPLETE_MARKER).unlink()  # first: a copy half deleted is no longer listed
    shutil.rmtree(top, ignore_errors=True)
    names = {k: v for k, v in dataset_names(s).items() if not Path(k).is_relative_to(top)}
    _write_json(s.dataset_list_file("names"), names)
    return True


def known_datasets(s: RunStore) -> list[str]:
    """Datasets to reuse: unpacked uploads, folders named before, and those runs trained on,
    less those forgotten."""
    found: list[str] = []
    base = s.datasets_dir()
    for marker in sorted(base.glob(f"*/{COMPLETE_MARKER}")):
        root = marker.parent / marker.read_text(encoding="utf-8").strip()
        found.append(str(root.resolve()))
    found += remembered_folders(s)
    found += [r.dataset for r in s.list_runs()]
    roots = data_roots(s.home)
    hidden = forgotten_datasets(s)
    unique = []
    for item in found:
        inside = within_roots(item, roots)  # a run's dataset may lie anywhere the CLI was given
        if inside is None or str(inside) in unique or str(inside) in hidden:
            continue
        if inside.is_dir():
            unique.append(str(inside))
    return unique


def dataset_label(path: str, names: Mapping[str, str] | None = None) -> str:
    """What the pickers call a dataset: an upload's archive name, else its folder's name."""
    return (names or {}).get(path) or Path(path).name or path


def dataset_labels(s: RunStore, datasets: Iterable[str]) -> dict[str, str]:
    """Each dataset's label; where two share one, the path is added to tell them apart."""
    names = dataset_names(s)
    labels = {d: dataset_label(d, names) for d in datasets}
    shared = Counter(labels.values())
    return {d: label if shared[label] == 1 else f"{label} — {d}" for d, label in labels.items()}


def dataset_picker(s: RunStore, key: str, empty_hint: str) -> str:
    """A select box over :func:`known_datasets` by name (the path below it in small print),
    remembering the choice across pages."""
    datasets = known_datasets(s)
    if not datasets:
        st.info(empty_hint)
        st.stop()
    labels = dataset_labels(s, datasets)
    wanted = st.session_state.get("dataset")
    choice = st.selectbox(
        "Dataset",
        datasets,
        index=datasets.index(wanted) if wanted in datasets else 0,
        format_func=lambda d: labels.get(d, d),
        key=key,
    )
    st.caption(f"`{choice}`")
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
