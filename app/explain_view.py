"""Where the model looked, in the app: a heatmap beside Results' worst mistakes and beside each
image uploaded on Predict ("predicted dog: it looked here").

The heatmaps come from ``training.explain`` (Grad-CAM, or occlusion where it cannot run), the
code behind ``python -m training explain``. Keras is imported only when one is computed. Results
computes them when asked (a button: the page stays fast) and keeps the overlays in the run's own
``explain/`` folder, so they are drawn from there afterwards.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import streamlit as st

from app.analysis import safe_image
from training.errors import BabysitterError
from training.store import Run, RunStore

MISTAKES_FOLDER = "mistakes"
"""Inside the run's ``explain/`` folder: the overlays of its worst mistakes."""
WIDTH = 128


def looked_caption(predicted: str) -> str:
    return f"predicted {predicted}: it looked here"


@st.cache_resource(show_spinner="Loading the model…", max_entries=2)
def _model(path: str, stamp: float) -> Any:
    """The run's model, loaded safely once per file version."""
    from training.predict import load_model_file

    return load_model_file(Path(path))


def mistake_heatmaps(s: RunStore, run: Run, mistakes: list[dict], root: Path) -> dict[str, Path]:
    """Overlays of the worst mistakes (``rel`` under ``root``, the run's dataset), by ``rel``:
    those cached in the run's folder, and the rest once the button under the heading is
    pressed."""
    found = {m["rel"]: safe_image(root, m["rel"]) for m in mistakes}
    images = {rel: path for rel, path in found.items() if path is not None}
    model = s.artifact(run.id, "model")
    folder = s.artifact(run.id, "explain") / MISTAKES_FOLDER
    wanted = {rel: folder / _cache_name(rel, path) for rel, path in images.items()}
    ready = {rel: png for rel, png in wanted.items() if png.is_file()}
    missing = [rel for rel in wanted if rel not in ready]
    if not missing:
        return ready
    if not model.is_file():
        st.caption("This run has no saved model, so there is no heatmap of where it looked.")
        return ready
    label = f"Show where the model looked ({len(missing)} image{'s' * (len(missing) != 1)})"
    if st.button(label, icon=":material/visibility:", key=f"explain_mistakes_{run.id}"):
        from training.explain import explain_files

        try:
            with st.spinner("Computing where the model looked…"):
                results = explain_files(
                    _model(str(model), model.stat().st_mtime),
                    [images[rel] for rel in missing],
                    folder,
                    names=[wanted[rel].name for rel in missing],
                )
        except BabysitterError as error:
            st.error(str(error))
            return ready
        for rel, result in zip(missing, results, strict=True):
            if "heatmap" in result:
                ready[rel] = Path(result["heatmap"])
        _note_method(results)
    return ready


def show_with_heatmap(image: Path, heatmap: Path | None, predicted: str) -> None:
    """A mistake's image, and its heatmap beside it when there is one."""
    if heatmap is None:
        st.image(str(image), width=WIDTH)
    else:
        st.image([str(image), str(heatmap)], width=WIDTH, caption=["", looked_caption(predicted)])


def show_upload_heatmap(column: Any, model: Any, model_path: Path, uploads: list, upload) -> None:
    """The heatmap of one uploaded image under it, for the class predicted; every upload is
    explained in one pass, once per set of uploads and model file."""
    try:
        overlays = _upload_overlays(
            model, str(model_path), model_path.stat().st_mtime, tuple(u.getvalue() for u in uploads)
        )
    except (BabysitterError, OSError) as error:
        column.caption(f"No heatmap: {error}")
        return
    found = overlays[uploads.index(upload)]
    if found is not None:
        png, predicted, method = found
        column.image(png, width=WIDTH, caption=f"{looked_caption(predicted)} ({method})")


@st.cache_data(show_spinner="Finding where the model looked…", max_entries=8)
def _upload_overlays(
    _model: Any, path: str, stamp: float, images: tuple[bytes, ...]
) -> list[tuple[bytes, str, str] | None]:
    """(overlay PNG, class explained, method) per upload; None where it cannot be decoded
    (Predict shows that upload's error already). ``path`` and ``stamp`` name the model."""
    import io

    from training.explain import explain_images

    overlays: list[tuple[bytes, str, str] | None] = []
    for found in explain_images(_model, list(images)):
        if isinstance(found, str):
            overlays.append(None)
            continue
        explanation, image = found
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        method = "Grad-CAM" if explanation.method == "gradcam" else "occlusion"
        overlays.append((buffer.getvalue(), explanation.class_name, method))
    return overlays


def _cache_name(rel: str, path: Path) -> str:
    """One file name per image and version of it (its path, size and time of change)."""
    stat = path.stat()
    key = f"{rel}\0{stat.st_size}\0{stat.st_mtime_ns}".encode()
    return hashlib.sha256(key).hexdigest()[:20] + ".png"


def _note_method(results: list[dict]) -> None:
    """Say so when the fallback was used, and why (as the CLI does)."""
    reason = next((r["reason"] for r in results if r.get("reason")), None)
    if reason:
        st.caption(f"Occlusion sensitivity was used: {reason}.")
