"""Results: the best model of a run, its gap and diagnosis, confusion matrix, worst mistakes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import streamlit as st

from app.analysis import (
    PERCENT_FORMAT,
    cell_images,
    confusion,
    finding_settings,
    gap_text,
    load_predictions,
    most_confused,
    per_class,
    percent,
    percent_points,
    safe_image,
    sig3,
    worst_mistakes,
)
from app.calibration_view import show_calibration
from app.charts import confusion_chart, curves_chart, gap_chart
from app.common import (
    pick_run,
    show_findings,
    show_label_suspects,
    show_run_findings,
    store,
    warn_unreadable,
)
from app.explain_view import mistake_heatmaps, show_with_heatmap
from app.learning_curve_view import show_run_curve
from app.report_view import offer_model_card
from training.fit.lr_auto_lines import auto_lines
from training.store.database import HOME_VARIABLE

# The export runs in the folder that holds the code (``python -m`` looks there first), so it runs
# the code the app runs, from a project folder or an installed package; the store is passed on.
ROOT = Path(__file__).resolve().parents[2]
AUDIT_CHECKS = {"leakage", "class_balance", "too_few_images"}
CELL_SHOWN = 24  # thumbnails of one confusion cell (a diagonal cell may hold thousands)


def export_tflite(run_id: str) -> str | None:
    """``training export RUN --format tflite`` in a TensorFlow process; the error, or None."""
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", HOME_VARIABLE: str(store().home)}
    command = [sys.executable, "-m", "training", "export", run_id, "--format", "tflite"]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=900
        )
    except subprocess.TimeoutExpired:
        return "the converter ran for more than 15 minutes."
    if done.returncode:
        return (done.stderr.strip().splitlines() or ["unknown error"])[-1]
    return None


def download(column, path: Path, file_name: str, mime: str) -> None:
    suffix = Path(file_name).suffix
    column.download_button(
        f"Download model ({suffix})",
        data=path.read_bytes(),
        file_name=file_name,
        mime=mime,
        icon=":material/download:",
        key=f"download_{suffix.lstrip('.')}",
    )


def pick_cell(names: list[str], matrix, run_id: str) -> tuple[int, int]:
    """The confusion cell (true, predicted) to look into, from two select boxes under the
    chart; it opens on the most frequent mistake."""

    def pick(column, label: str, side: str, default: int) -> int:
        return column.selectbox(
            label,
            range(len(names)),
            index=default,
            format_func=names.__getitem__,
            key=f"cell_{side}_{run_id}",
        )

    a, b = st.columns(2)
    true_index, predicted_index = most_confused(matrix)
    true_index = pick(a, "True class", "true", true_index)
    return true_index, pick(b, "Predicted class", "predicted", predicted_index)


def show_cell(pred: dict, names: list[str], cell: tuple[int, int], root: Path) -> None:
    """The validation images in one confusion cell, most confident first, with their
    confidence: what the count is made of."""
    images = cell_images(pred, *cell)
    true_name, predicted_name = names[cell[0]], names[cell[1]]
    count = f"{len(images)} image{'s' * (len(images) != 1)}"
    st.markdown(f"**True {true_name}, predicted {predicted_name}: {count}**")
    if not images:
        st.caption(f"No validation image of {true_name} was predicted {predicted_name}.")
    cols = st.columns(6)
    for i, item in enumerate(images[:CELL_SHOWN]):
        with cols[i % 6]:
            image = safe_image(root, item["rel"])
            if image is not None:
                st.image(str(image), width=96)
            st.caption(f"{item['rel']} ({percent(item['confidence'])})")
    if len(images) > CELL_SHOWN:
        st.caption(f"The {CELL_SHOWN} most confident of {len(images)} are shown.")


st.title("Results")
s = store()
warn_unreadable(s)
runs = [r for r in s.list_runs() if r.status == "completed" and r.kind in ("train", "search")]
run = pick_run(runs, key="results_run")
if run is None:
    st.info("No completed runs yet.")
    st.stop()

summary = run.summary or {}
if run.kind == "search":
    st.subheader(f"Best trial: {summary.get('best_trial', '–')}")
    if summary.get("best_run"):
        st.caption(f"Fine-tuned in full as run `{summary['best_run']}`.")
    else:
        head = summary.get("head_val_accuracy")
        st.caption(
            "A head search only (top K 0): no model was trained"
            + (f"; the best head reached {percent(head)} validation accuracy." if head else ".")
            + " Train this configuration from the Launch page to get a model."
        )
    if summary.get("hyperparameters"):
        st.dataframe(
            [
                {"hyperparameter": k, "value": str(sig3(v))}
                for k, v in summary["hyperparameters"].items()
            ],
            hide_index=True,
        )

train_acc = (summary.get("train") or {}).get("accuracy")
val_acc = (summary.get("val") or {}).get("accuracy")
c1, c2, c3 = st.columns(3)
INFERENCE = "Inference mode (dropout and augmentation off), measured after training."
c1.metric("Train accuracy", percent(train_acc), help=INFERENCE)
c2.metric("Val accuracy", percent(val_acc), help=INFERENCE)
gap = summary.get("gap")
c3.metric("Gap (train − val)", percent(gap, signed=True), help=INFERENCE)
st.markdown(f"**Accuracy gap (train − val)** · {gap_text(summary)}")
for line in auto_lines(summary):  # --lr auto: the rate it picked and the window, as the CLI says
    st.caption(line)

epochs_run = summary.get("best_run") if run.kind == "search" else run.id
epochs = s.epochs(epochs_run) if epochs_run else []
if epochs:
    a, b = st.columns(2)
    a.altair_chart(curves_chart(epochs, "accuracy"), width="stretch")
    b.altair_chart(gap_chart(epochs, gap), width="stretch")

st.subheader("Diagnosis and advice")
run_findings = s.findings(run.id)
findings = show_run_findings(s, run, run_findings, exclude=AUDIT_CHECKS)
with st.expander("Data checks"):
    show_findings(
        [f for f in run_findings if f.get("check") in AUDIT_CHECKS],
        settings=finding_settings(s, run),
    )
show_label_suspects(
    next((f for f in findings if f.get("check") == "label_noise"), None), run.dataset
)
show_run_curve(s, run)

pred = load_predictions(s.artifact(run.id, "predictions"))
if pred is None:
    st.info("This run has no predictions file.")
else:
    names = [str(n) for n in pred["class_names"]]
    guess = pred["probabilities"].argmax(axis=1)
    matrix = confusion(pred["labels"], guess, len(names))
    st.subheader(f"Validation: confusion matrix ({len(guess)} images)")
    left, right = st.columns(2)
    with left:
        chart = st.empty()  # drawn after the select boxes under it, with their cell outlined
        cell = pick_cell(names, matrix, run.id)
        chart.altair_chart(confusion_chart(matrix, names, cell), width="stretch")
    right.dataframe(
        [
            {
                **row,
                "precision": percent_points(row["precision"]),
                "recall": percent_points(row["recall"]),
            }
            for row in per_class(matrix, names)
        ],
        hide_index=True,
        column_config={
            "precision": st.column_config.NumberColumn(format=PERCENT_FORMAT),
            "recall": st.column_config.NumberColumn(format=PERCENT_FORMAT),
        },
    )
    show_cell(pred, names, cell, Path(run.dataset))
    st.subheader("Worst mistakes")
    mistakes = worst_mistakes(pred)
    if not mistakes:
        st.caption("No mistakes on the validation images.")
    root = Path(run.dataset)
    heatmaps = mistake_heatmaps(s, run, mistakes, root)  # on request; cached in the run
    cols = st.columns(4)
    for i, m in enumerate(mistakes):
        with cols[i % 4]:
            image = safe_image(root, m["rel"])
            if image is not None:
                show_with_heatmap(image, heatmaps.get(m["rel"]), m["predicted"])
            st.caption(
                f"{m['rel']}: true **{m['true']}**, predicted **{m['predicted']}** "
                f"({percent(m['confidence'])})"
            )

show_calibration(summary)

model = s.artifact(run.id, "model")
if model.is_file():
    keras_col, tflite_col = st.columns(2)
    download(keras_col, model, f"{run.id}.keras", "application/zip")
    tflite = s.artifact(run.id, "export") / "model.tflite"
    if not tflite.is_file() and tflite_col.button(
        "Convert to TFLite", icon=":material/smartphone:", key="convert_tflite"
    ):
        with st.spinner("Converting with TensorFlow's LiteRT converter…"):
            error = export_tflite(run.id)
        if error:
            tflite_col.error(f"TFLite export failed: {error}")
    if tflite.is_file():
        download(tflite_col, tflite, f"{run.id}.tflite", "application/octet-stream")
offer_model_card(s, run)
