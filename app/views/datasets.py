"""Datasets: add one (upload a .zip or name a server folder), audit it, keep it for reuse."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import streamlit as st

from app.analysis import safe_image
from app.charts import counts_chart
from app.common import (
    dataset_picker,
    known_datasets,
    remember_folder,
    show_label_suspects,
    store,
)
from app.roots import data_roots, refusal, within_roots
from training.babysit.thresholds import IMBALANCE_WARN
from training.data.audit import Leak
from training.errors import BabysitterError
from training.fit.prepare import audit_path
from training.store import RunStore

THUMBS_PER_CLASS = 6


@st.cache_data(show_spinner="Auditing images…", max_entries=16)
def audit(path: str, home: str, stamp: float) -> dict:
    """The audit of a dataset folder or archive (cached by path and modification time)."""
    store = RunStore(home)
    report = audit_path(path, store.datasets_dir(), cache_dir=store.cache_dir())
    return {"report": report}


def _stamp(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _leak_note(leak: Leak) -> str:
    """Kind and evidence of one leaking pair: exact copies fail the check, near ones warn."""
    if leak.kind == "exact":
        return "**leak (exact)**: identical pixels"
    return (
        f"**leak (near)**: perceptual-hash distance {leak.hash_distance}/64, thumbnail "
        f"difference {leak.pixel_diff:.1f} levels: check whether it is the same photo"
    )


def _add_upload(s, upload) -> str | None:
    uploads = s.datasets_dir() / "uploads"
    uploads.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(upload.name).name).strip("._") or "upload"
    if not name.lower().endswith(".zip"):
        name += ".zip"
    target = uploads / name
    target.write_bytes(upload.getvalue())
    try:
        report = audit(str(target), str(s.home), _stamp(target))["report"]
    except BabysitterError as error:
        target.unlink(missing_ok=True)
        st.error(f"{upload.name}: {error}")
        return None
    target.unlink(missing_ok=True)  # unpacked under datasets/; the zip itself is not needed
    return str(Path(report.root).resolve())


st.title("Datasets")
s = store()

with st.expander("Add a dataset", expanded=not known_datasets(s)):
    upload = st.file_uploader("Upload a .zip of class folders", type=["zip"], key="upload")
    if upload is not None and st.button("Unpack and audit", key="unpack"):
        root = _add_upload(s, upload)
        if root:
            st.session_state["dataset"] = st.session_state["dataset_pick"] = root
            st.success(f"Unpacked to `{root}`.")
    folder = st.text_input("…or a folder on the server", key="folder", placeholder="/data/pets")
    roots = data_roots(s.home)
    st.caption("Allowed folders: " + ", ".join(f"`{r}`" for r in roots))
    if st.button("Add folder", key="add_folder", disabled=not folder.strip()):
        path = within_roots(folder.strip(), roots)
        if path is None:
            st.error(refusal(roots))
        elif not path.is_dir():
            st.error(f"Not a folder: `{path}`.")
        else:
            remember_folder(s, path)
            st.session_state["dataset"] = st.session_state["dataset_pick"] = str(path)

choice = dataset_picker(s, "dataset_pick", "No datasets yet: upload a .zip or name a folder above.")

try:
    report = audit(choice, str(s.home), _stamp(Path(choice)))["report"]
except BabysitterError as error:
    st.error(str(error))
    st.stop()

verdict = report.verdict
c1, c2, c3, c4 = st.columns(4)
c1.metric("Classes", len(report.classes))
c2.metric("Images", len(report.records))
c3.metric("Unreadable", len(report.unreadable))
c4.metric("Imbalance (largest / smallest)", f"{report.imbalance_ratio:.1f}×")
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
st.altair_chart(counts_chart(report.counts), width="stretch")

st.subheader("Samples")
per_class: dict[str, list[Path]] = defaultdict(list)
for record in report.readable():
    if len(per_class[record.label]) < THUMBS_PER_CLASS:
        per_class[record.label].append(Path(record.path))
for name in report.classes:
    if per_class.get(name):
        st.markdown(f"**{name}**")
        st.image(
            [str(p) for p in per_class[name]], width=96, caption=[p.name for p in per_class[name]]
        )

st.subheader("Unreadable files")
if report.unreadable:
    st.dataframe(
        [{"file": rel, "reason": reason} for rel, reason in report.unreadable], hide_index=True
    )
else:
    st.caption("None: every file decoded.")

st.subheader("Duplicates and leakage")
root = Path(report.root)
pairs = [
    (leak.original, leak.original_split, leak.copy, leak.copy_split, _leak_note(leak))
    for leak in report.leakage
]
for group in report.exact_duplicates + report.near_duplicates + report.cross_class_duplicates:
    kind = "same image in two classes" if group in report.cross_class_duplicates else "duplicate"
    pairs += [(group[0], "", other, "", kind) for other in group[1:]]
if not pairs:
    st.caption("No duplicates, no image shared between splits.")
for a, sa, b, sb, kind in pairs[:20]:
    left, right, note = st.columns([1, 1, 2])
    for col, rel, split in ((left, a, sa), (right, b, sb)):
        image = safe_image(root, rel)
        if image is not None:
            col.image(str(image), width=96)
        col.caption(f"{rel}" + (f" ({split})" if split else ""))
    note.write(kind)
if len(pairs) > 20:
    st.caption(f"…and {len(pairs) - 20} more (see `python -m training audit`).")


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


st.subheader("Labels")
finding, run_id = _latest_label_check(root)
if finding is None:
    st.caption(
        "Labels are judged on backbone features: run **Check first** on the Launch page (or "
        "`python -m training check`); when the features are good enough to tell a wrong label "
        "from their own mistakes, the labels worth a second look show here."
    )
else:
    st.caption(f"From run {run_id}: {finding.get('measured')}.")
    show_label_suspects(finding, root)
