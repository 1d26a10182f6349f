"""Predict: top-k classes for uploaded images with a run's model (Keras loaded on first use)."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import streamlit as st

from app.charts import probabilities_chart
from app.common import pick_run, store, warn_unreadable
from app.explain_view import show_upload_heatmap
from training.data.images import IMAGE_EXTENSIONS
from training.errors import BabysitterError


@st.cache_resource(show_spinner="Loading the model…", max_entries=2)
def load_model(path: str, stamp: float):
    """The run's ``.keras`` model, loaded safely once per file version (lazy Keras import)."""
    from training.predict import load_model_file

    return load_model_file(Path(path))


def predict(model, uploads, top_k: int) -> list[dict]:
    """Top-k per upload, decoded by ``predict_files`` (``load_rgb``/``to_rgb``) like training."""
    from training.predict import predict_files

    with tempfile.TemporaryDirectory(prefix="babysitter-predict-") as folder:
        files = []
        for i, upload in enumerate(uploads):
            name = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(upload.name).name) or "image"
            path = Path(folder) / f"{i:04d}-{name}"
            path.write_bytes(upload.getvalue())
            files.append(path)
        results = predict_files(model, files, top_k=top_k)
    for result, upload in zip(results, uploads, strict=True):
        result["file"] = upload.name
    return results


def page() -> None:
    """The page; a plain import (a test of :func:`predict`) draws nothing."""
    st.title("Predict")
    s = store()
    warn_unreadable(s)
    runs = [
        r for r in s.list_runs() if r.status == "completed" and s.artifact(r.id, "model").is_file()
    ]
    run = pick_run(runs, key="predict_run", label="Model of run")
    if run is None:
        st.info("No run has a saved model yet.")
        st.stop()
    classes = (run.summary or {}).get("classes") or []
    top_k = st.number_input(
        "Top K", 1, max(len(classes), 1) if classes else 10, min(3, len(classes) or 3), key="top_k"
    )
    uploads = st.file_uploader(
        "Images",
        type=sorted(suffix[1:] for suffix in IMAGE_EXTENSIONS),
        accept_multiple_files=True,
        key="images",
    )
    if uploads:
        path = s.artifact(run.id, "model")
        try:
            model = load_model(str(path), path.stat().st_mtime)
            results = predict(model, uploads, int(top_k))
        except BabysitterError as error:
            st.error(str(error))
            st.stop()
        for result, upload in zip(results, uploads, strict=True):
            left, right = st.columns([1, 3])
            if "error" in result:
                left.write(result["file"])
                right.error(result["error"])
                continue
            left.image(upload.getvalue(), width=128, caption=result["file"])
            show_upload_heatmap(left, model, path, uploads, upload)
            best = result["predictions"][0]
            right.markdown(f"**{best['class']}** ({best['probability']:.1%})")
            right.altair_chart(probabilities_chart(result["predictions"]), width="stretch")


if __name__ == "__main__":  # how Streamlit runs a page
    page()
