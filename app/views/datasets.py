"""Datasets: add one (upload a .zip or name a server folder), audit it, keep it for reuse or
forget it."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from pathlib import Path

import streamlit as st

from app.analysis import safe_image
from app.charts import counts_chart
from app.common import (
    dataset_label,
    dataset_names,
    dataset_picker,
    delete_unpacked,
    forget_dataset,
    known_datasets,
    remember_folder,
    remember_upload,
    show_label_suspects,
    store,
    unpacked_copy,
)
from app.dataset_audit import audit_report, modified
from app.learning_curve_view import show_dataset_curve
from app.roots import data_roots, refusal, roots_problem, within_roots
from training.babysit.thresholds import IMBALANCE_WARN
from training.data.audit import AuditReport, Leak
from training.errors import BabysitterError

THUMBS_PER_CLASS = 6
SHOWN_PAIRS = 20
CONFLICT = "same image in two classes"


def _leak_note(leak: Leak) -> str:
    """Kind and evidence of one leaking pair: exact copies fail the check, near ones warn."""
    if leak.kind == "exact":
        return "**leak (exact)**: identical pixels"
    return (
        f"**leak (near)**: perceptual-hash distance {leak.hash_distance}/64, thumbnail "
        f"difference {leak.pixel_diff:.1f} levels: check whether it is the same photo"
    )


def upload_name(filename: str) -> str:
    """The name the pickers show for an upload: the archive's, as its user gave it."""
    stem = re.sub(r"\.zip$", "", Path(filename).name, flags=re.IGNORECASE)
    return "".join(c for c in stem if c.isprintable()).strip() or "upload"


def _add_upload(s, upload) -> str | None:
    uploads = s.archive_uploads_dir()
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(upload.name).name).strip("._") or "upload"
    if not name.lower().endswith(".zip"):
        name += ".zip"
    target = uploads / name
    target.write_bytes(upload.getvalue())
    try:
        report = audit_report(str(target), str(s.home), modified(target))
    except BabysitterError as error:
        target.unlink(missing_ok=True)
        st.error(f"{upload.name}: {error}")
        return None
    target.unlink(missing_ok=True)  # unpacked under datasets/; the zip itself is not needed
    root = str(Path(report.root).resolve())
    remember_upload(s, root, upload_name(upload.name))
    return root


def folder_placeholder(roots: list[Path]) -> str:
    """An example the folder field accepts: under the first folder the server allows by
    ``BABYSITTER_DATA_ROOTS``, else under the home's datasets folder (always allowed)."""
    return str((roots[1] if len(roots) > 1 else roots[0]) / "pets")


def _add_dataset(s) -> None:
    """Upload a .zip (unpacked under the home) or name a folder under the allowed roots."""
    upload = st.file_uploader("Upload a .zip of class folders", type=["zip"], key="upload")
    if upload is not None and st.button("Unpack and audit", key="unpack"):
        root = _add_upload(s, upload)
        if root:
            st.session_state["dataset"] = st.session_state["dataset_pick"] = root
            st.success(f"Unpacked to `{root}` as **{upload_name(upload.name)}**.")
    roots = data_roots(s.home)
    folder = st.text_input(
        "…or a folder on the server", key="folder", placeholder=folder_placeholder(roots)
    )
    if problem := roots_problem(s.home):
        st.error(problem)
    st.caption("Allowed folders (the app serves these only): " + ", ".join(f"`{r}`" for r in roots))
    if st.button("Add folder", key="add_folder", disabled=not folder.strip()):
        path = within_roots(folder.strip(), roots)
        if path is None:
            st.error(refusal(roots))
        elif not path.is_dir():
            st.error(f"Not a folder: `{path}`.")
        else:
            remember_folder(s, path)
            st.session_state["dataset"] = st.session_state["dataset_pick"] = str(path)


def _forget(s, choice: str) -> None:
    """Forget: a server folder, or one known from a run, leaves the pickers and keeps its files;
    an upload's unpacked copy is deleted, and only once its box is ticked as well."""
    copy = unpacked_copy(s, choice)
    label = dataset_label(choice, dataset_names(s))
    with st.expander("Forget this dataset"):
        if copy is None:
            st.caption(
                "Takes it out of the dataset pickers (here and on Launch). Its files stay where "
                "they are, and so do the runs trained on it."
            )
            confirmed = True
        else:
            st.caption(
                "An upload: forgetting it deletes its unpacked copy under the home's datasets "
                "folder. The runs trained on it stay."
            )
            confirmed = st.checkbox(
                f"Yes, delete the unpacked copy `{copy}`", key=f"forget_confirm_{copy.name}"
            )
        if st.button("Forget", key="forget", disabled=not confirmed) and confirmed:
            if copy is None:
                forget_dataset(s, choice)
            else:
                delete_unpacked(s, choice)
            for key in ("dataset", "dataset_pick"):
                st.session_state.pop(key, None)
            st.session_state["forgotten"] = label
            st.rerun()


def _imbalance(report: AuditReport) -> str:
    """Largest / smallest class; "–" with fewer than two classes of readable images, where a
    ratio would only mislead (an empty folder is not "balanced")."""
    if len(Counter(r.label for r in report.readable())) < 2:
        return "–"
    return f"{report.imbalance_ratio:.1f}×"


def _summary(report: AuditReport) -> None:
    """Counts, the verdict and its warnings, and the images per class and split."""
    verdict = report.verdict
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Classes", len(report.classes))
    c2.metric("Images", len(report.records))
    c3.metric("Unreadable", len(report.unreadable))
    c4.metric("Imbalance (largest / smallest)", _imbalance(report))
    if verdict.trainable:
        st.success("Trainable." + (" Layout: " + report.layout))
    else:
        st.error("Not trainable: " + "; ".join(verdict.reasons))
    for warning in verdict.warnings:
        st.warning(warning)
    if report.imbalance_ratio >= IMBALANCE_WARN:
        st.warning(
            f"Classes are imbalanced ({report.imbalance_ratio:.1f}× between the largest and the "
            "smallest): accuracy will flatter the large classes; look at per-class recall."
        )
    st.subheader("Images per class and split")
    if report.readable():
        st.altair_chart(counts_chart(report.counts), width="stretch")
    else:
        st.caption("No readable images to count.")


def _samples(report: AuditReport) -> None:
    per_class: dict[str, list[Path]] = defaultdict(list)
    for record in report.readable():
        if len(per_class[record.label]) < THUMBS_PER_CLASS:
            per_class[record.label].append(Path(record.path))
    for name in report.classes:
        if per_class.get(name):
            st.markdown(f"**{name}**")
            shown = per_class[name]
            st.image([str(p) for p in shown], width=96, caption=[p.name for p in shown])


def _unreadable(report: AuditReport) -> None:
    """Unreadable files with their reasons in full (a static table wraps; a grid clips); then
    the links the scan did not follow, named as the CLI's audit names them."""
    if report.unreadable:
        rows = [{"file": rel, "reason": reason} for rel, reason in report.unreadable]
        st.table(rows, hide_index=True)
    else:
        st.caption("None: every file decoded.")
    links = [{"file": rel, "reason": why} for rel, why in report.skipped if "symlink" in why]
    if links:
        st.caption(f"Skipped {len(links)} symbolic link(s), not used for training:")
        st.table(links, hide_index=True)


def duplicate_pairs(report: AuditReport) -> list[tuple[str, str, str, str, str]]:
    """Each pair of files once, as its strongest kind: a leak between splits (with evidence),
    then the same image under two classes, then a duplicate. The audit lists a class conflict
    among its duplicate groups as well, and an exact leak among the exact duplicates."""
    pairs: dict[frozenset[str], tuple[str, str, str, str, str]] = {}
    for leak in report.leakage:
        row = (leak.original, leak.original_split, leak.copy, leak.copy_split, _leak_note(leak))
        pairs.setdefault(frozenset((leak.original, leak.copy)), row)
    conflicts = report.cross_class_duplicates
    for group in (*conflicts, *report.exact_duplicates, *report.near_duplicates):
        kind = CONFLICT if group in conflicts else "duplicate"
        for other in group[1:]:
            pairs.setdefault(frozenset((group[0], other)), (group[0], "", other, "", kind))
    return list(pairs.values())


def _duplicates(report: AuditReport) -> None:
    root = Path(report.root)
    pairs = duplicate_pairs(report)
    if not pairs:
        st.caption("No duplicates, no image shared between splits.")
    for a, sa, b, sb, kind in pairs[:SHOWN_PAIRS]:
        left, right, note = st.columns([1, 1, 2])
        for col, rel, split in ((left, a, sa), (right, b, sb)):
            image = safe_image(root, rel)
            if image is not None:
                col.image(str(image), width=96)
            col.caption(f"{rel}" + (f" ({split})" if split else ""))
        note.write(kind)
    if len(pairs) > SHOWN_PAIRS:
        st.caption(f"…and {len(pairs) - SHOWN_PAIRS} more (see `python -m training audit`).")


def _latest_label_check(root: Path) -> tuple[dict | None, str | None]:
    """The newest ``label_noise`` finding of a check or train run on this dataset, and its run."""
    s = store()
    for run in s.list_runs():
        if run.kind not in ("check", "train") or Path(run.dataset) != root:
            continue
        for finding in s.findings(run.id):
            if finding.get("check") == "label_noise":
                return finding, run.id
    return None, None


def _labels(root: Path) -> None:
    finding, run_id = _latest_label_check(root)
    if finding is None:
        st.caption(
            "Labels are judged on backbone features: run **Check first** on the Launch page (or "
            "`python -m training check`); when the features are good enough to tell a wrong "
            "label from their own mistakes, the labels worth a second look show here."
        )
    else:
        st.caption(f"From run {run_id}: {finding.get('measured')}.")
        show_label_suspects(finding, root)


st.title("Datasets")
s = store()
if forgotten := st.session_state.pop("forgotten", None):
    st.success(f"Forgot **{forgotten}**.")

with st.expander(
    "Add a dataset", expanded=not known_datasets(s) or roots_problem(s.home) is not None
):
    _add_dataset(s)

choice = dataset_picker(s, "dataset_pick", "No datasets yet: upload a .zip or name a folder above.")
_forget(s, choice)

try:
    report = audit_report(choice, str(s.home), modified(choice))
except BabysitterError as error:
    st.error(str(error))
    st.stop()

_summary(report)
st.subheader("Samples")
_samples(report)
st.subheader("Unreadable files")
_unreadable(report)
st.subheader("Duplicates and leakage")
_duplicates(report)
st.subheader("Labels")
_labels(Path(report.root))
show_dataset_curve(s, Path(report.root))
