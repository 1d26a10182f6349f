"""The confusion matrix drill-down on Results: a cell (true, predicted) shows its validation
images, most confident first, on a run stored by hand with its ``predictions.npz``."""

from __future__ import annotations

import numpy as np
import pytest

from app.analysis import cell_images, most_confused
from app.charts import confusion_chart
from tests.apptest import page
from tests.imagegen import make_image_folder
from training.config import TrainConfig
from training.store import RunStore

NAMES = ["cat", "dog", "fox"]
# Six validation images: (true class, probabilities over cat, dog, fox).
ROWS = [
    (0, [0.9, 0.05, 0.05]),  # cat, right
    (0, [0.2, 0.7, 0.1]),  # cat taken for a dog
    (0, [0.1, 0.85, 0.05]),  # cat taken for a dog, more confidently
    (1, [0.1, 0.8, 0.1]),  # dog, right
    (1, [0.6, 0.3, 0.1]),  # dog taken for a cat
    (2, [0.1, 0.1, 0.8]),  # fox, right
]


def predictions(rels: list[str]) -> dict[str, np.ndarray]:
    """``predictions.npz``'s arrays, as training writes them."""
    return {
        "rels": np.array(rels),
        "labels": np.array([label for label, _ in ROWS]),
        "probabilities": np.array([p for _, p in ROWS], dtype=np.float32),
        "class_names": np.array(NAMES),
    }


def test_a_cell_lists_its_images_most_confident_first():
    pred = predictions([f"img{i}.png" for i in range(len(ROWS))])
    cat_as_dog = cell_images(pred, 0, 1)
    assert [c["rel"] for c in cat_as_dog] == ["img2.png", "img1.png"]
    assert [c["confidence"] for c in cat_as_dog] == pytest.approx([0.85, 0.7])
    assert [c["rel"] for c in cell_images(pred, 1, 0)] == ["img4.png"]
    assert [c["rel"] for c in cell_images(pred, 2, 2)] == ["img5.png"]
    assert cell_images(pred, 2, 0) == []


def test_the_drill_down_opens_on_the_most_frequent_mistake():
    assert most_confused(np.array([[1, 2, 0], [1, 1, 0], [0, 0, 1]])) == (0, 1)
    assert most_confused(np.array([[3, 0], [0, 2]])) == (0, 0)  # no mistakes: the first class


def test_the_chosen_cell_is_outlined_on_the_chart():
    chart = confusion_chart(np.array([[3, 1], [2, 4]]), ["a", "b"], (1, 0)).to_dict()
    rows = next(iter(chart["datasets"].values()))
    assert [(r["true"], r["predicted"]) for r in rows if r["selected"]] == [("b", "a")]
    outline = chart["layer"][-1]
    assert outline["transform"] == [{"filter": "datum.selected"}]
    assert outline["mark"]["filled"] is False


@pytest.fixture
def stored_run(tmp_path, babysitter_home):
    """A completed train run over a folder of images, with predictions for six of them."""
    data = make_image_folder(tmp_path / "pets", {"cat": 3, "dog": 2, "fox": 1})
    rels = sorted(p.relative_to(data).as_posix() for p in data.rglob("*.png"))
    store = RunStore(babysitter_home)
    config = TrainConfig(data=str(data), backbone="VGG16").to_dict()
    run = store.create_run("train", "VGG16", config, "fp", str(data))
    np.savez(store.artifact(run.id, "predictions"), **predictions(rels))
    store.set_status(run.id, "completed", summary={"val": {"accuracy": 0.5}})
    return run.id, rels


def captions(at) -> list[str]:
    return [c.value for c in at.caption]


def test_results_show_a_cells_images_with_their_confidence(stored_run):
    run_id, rels = stored_run
    at = page("results", run_id=run_id)
    assert at.selectbox(key=f"cell_true_{run_id}").value == 0  # cat, predicted dog: 2 of them
    assert at.selectbox(key=f"cell_predicted_{run_id}").value == 1
    assert "**True cat, predicted dog: 2 images**" in [m.value for m in at.markdown]
    shown = [c for c in captions(at) if c in (f"{rels[2]} (85.0%)", f"{rels[1]} (70.0%)")]
    assert shown == [f"{rels[2]} (85.0%)", f"{rels[1]} (70.0%)"]  # most confident first
    assert len(at.get("image")) >= 2  # thumbnails, read from the run's dataset
    assert "datum.selected" in at.get("vega_lite_chart")[0].proto.spec  # the cell, outlined

    at.selectbox(key=f"cell_true_{run_id}").set_value(2)
    at.selectbox(key=f"cell_predicted_{run_id}").set_value(0).run()
    assert not at.exception, [e.value for e in at.exception]
    assert "**True fox, predicted cat: 0 images**" in [m.value for m in at.markdown]
    assert "No validation image of fox was predicted cat." in captions(at)
