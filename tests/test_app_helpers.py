"""The app's pure helpers: the numbers and the charts (Launch's are in test_app_launch.py)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from app import analysis, charts


def test_confusion_per_class_and_worst_mistakes():
    pred = {
        "rels": np.array(["a/1.png", "a/2.png", "b/3.png", "b/4.png"]),
        "labels": np.array([0, 0, 1, 1]),
        "probabilities": np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6], [0.7, 0.3]]),
        "class_names": np.array(["a", "b"]),
    }
    guess = pred["probabilities"].argmax(axis=1)
    matrix = analysis.confusion(pred["labels"], guess, 2)
    assert matrix.tolist() == [[1, 1], [1, 1]]
    rows = analysis.per_class(matrix, ["a", "b"])
    assert rows[0] == {"class": "a", "precision": 0.5, "recall": 0.5, "support": 2}
    worst = analysis.worst_mistakes(pred)
    assert [m["rel"] for m in worst] == ["a/2.png", "b/4.png"]  # most confident first
    assert worst[0]["true"] == "a" and worst[0]["predicted"] == "b"


def test_safe_image_stays_inside_the_dataset(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.png").write_bytes(b"x")
    (tmp_path.parent / "outside.png").write_bytes(b"x")
    assert analysis.safe_image(tmp_path, "a/x.png") == (tmp_path / "a" / "x.png").resolve()
    assert analysis.safe_image(tmp_path, "../outside.png") is None
    assert analysis.safe_image(tmp_path, "a/missing.png") is None


def test_hyperparameter_chart_log_axis_ranges_and_failed_marks():
    points = pd.DataFrame(
        [
            {"trial_id": "s1-0", "stage": 1, "status": "completed", "value": 1e-3, "score": 0.8},
            {"trial_id": "s1-1", "stage": 1, "status": "failed", "value": 0.5, "score": 0.0},
        ]
    )
    ranges = [{"stage": 1, "low": 1e-5, "high": 1.0}, {"stage": 2, "low": 1e-4, "high": 1e-2}]
    spec = json.dumps(charts.hyperparameter_chart(points, ranges, "lr", True, True).to_dict())
    assert '"type": "log"' in spec and '"rect"' in spec and '"rule"' in spec
    assert '"cross"' in spec
    linear = charts.hyperparameter_chart(points, [], "dropout", False, True).to_dict()
    assert '"log"' not in json.dumps(linear)


def test_curve_and_gap_frames_keep_phase_order_and_drop_nan():
    epochs = [
        {
            "phase": "head",
            "epoch": 1,
            "loss": 1.0,
            "val_loss": 1.1,
            "accuracy": 0.5,
            "val_accuracy": 0.4,
        },
        {
            "phase": "finetune",
            "epoch": 1,
            "loss": float("nan"),
            "val_loss": 0.9,
            "accuracy": 0.9,
            "val_accuracy": 0.6,
        },
    ]
    frame = charts.epoch_frame(epochs)
    assert list(frame["step"]) == [1, 2] and list(frame["phase"]) == ["head", "finetune"]
    assert frame["loss"].isna().tolist() == [False, True]
    assert frame["gap"].round(3).tolist() == [0.1, 0.3]
    charts.curves_chart(epochs, "loss").to_dict()
    charts.gap_chart(epochs).to_dict()
    charts.confusion_chart(np.eye(2, dtype=int), ["a", "b"]).to_dict()
    charts.counts_chart({"train": {"a": 3}, "val": {"a": 1}}).to_dict()
