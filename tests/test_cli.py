"""The command line as a user meets it: exit codes, plain errors, JSON, and a whole journey."""

from __future__ import annotations

import json

import pytest

from tests.cli_process import run_cli
from tests.imagegen import make_image_folder, zip_folder
from training.cli import main


def test_audit_reports_and_exits_zero(image_folder, capsys):
    assert main(["audit", str(image_folder)]) == 0
    out = capsys.readouterr().out
    assert "cat" in out and "dog" in out


def test_audit_json_of_a_zip(tmp_path, capsys):
    folder = make_image_folder(tmp_path / "d", {"a b": 3, "ünï": 3})
    archive = zip_folder(folder, tmp_path / "d.zip", top_level="photos")
    assert main(["audit", str(archive), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert sorted(report["classes"]) == ["a b", "ünï"]
    assert report["verdict"]["trainable"] is True


def test_untrainable_data_exits_2_with_the_reason(tmp_path, capsys):
    folder = make_image_folder(tmp_path / "one", {"only": 4})
    assert main(["audit", str(folder)]) == 2
    assert "class" in capsys.readouterr().out.lower()


def test_errors_are_one_plain_line_without_traceback(tmp_path, babysitter_home):
    result = run_cli("audit", str(tmp_path / "missing"), home=babysitter_home)
    assert result.returncode != 0
    assert result.stderr.startswith("error: ")
    assert "Traceback" not in result.stderr
    assert str(tmp_path / "missing") in result.stderr


def test_unknown_backbone_suggests_a_name(image_folder, babysitter_home):
    result = run_cli("train", str(image_folder), "--backbone", "resnet5", home=babysitter_home)
    assert result.returncode == 1
    assert "ResNet50" in result.stderr and "Traceback" not in result.stderr


def test_backbones_lists_every_family(capsys):
    assert main(["backbones", "--json"]) == 0
    names = {entry["name"] for entry in json.loads(capsys.readouterr().out)}
    for expected in (
        "VGG16",
        "ResNet152V2",
        "InceptionV3",
        "InceptionResNetV2",
        "Xception",
        "DenseNet201",
        "MobileNetV3Small",
        "EfficientNetB7",
        "EfficientNetV2L",
        "ConvNeXtXLarge",
        "NASNetLarge",
    ):
        assert expected in names


def test_inspect_vgg16_matches_the_lecture(capsys):
    assert main(["inspect", "VGG16", "--include-top", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["totals"]["params"] == 138_357_544
    assert report["totals"]["activations"] == pytest.approx(15.2e6, rel=0.01)
    assert report["training_memory"]["total_bytes"] > 0


# TensorFlow only: under JAX, training, saving and predicting are core tests of their own
# (test_train, test_api); this journey checks the commands' wiring, which has no backend.
def test_train_runs_predict_export_journey(tmp_path, capsys):
    data = make_image_folder(tmp_path / "d", {"red": 6, "green": 6}, size=32)
    code = main(
        [
            "train",
            str(data),
            "--backbone",
            "MobileNetV2",
            "--weights",
            "none",
            "--image-size",
            "32",
            "--epochs-head",
            "2",
            "--epochs-finetune",
            "0",  # phase 1 only: the wiring is the subject; phase 2 is test_train's
            "--batch-size",
            "4",
            "--json",
        ]
    )
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    run_id = result["run_id"]
    assert {"train", "val", "gap", "model"} <= set(result)

    assert main(["runs", "list", "--json"]) == 0
    assert [r["id"] for r in json.loads(capsys.readouterr().out)] == [run_id]
    assert main(["runs", "show", run_id[:12]]) == 0
    assert run_id in capsys.readouterr().out

    image = str(data / "red" / "img_0001.png")
    assert main(["predict", run_id, image, "--top-k", "2", "--json"]) == 0
    (prediction,) = json.loads(capsys.readouterr().out)
    assert {p["class"] for p in prediction["predictions"]} == {"red", "green"}

    out = tmp_path / "exported.keras"
    assert main(["export", run_id, "--format", "keras", "--output", str(out)]) == 0
    assert out.exists()
