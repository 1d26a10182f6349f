"""``explain``: heatmaps that point where the class was decided, the occlusion fallback, the
CLI's overlays and ``--json``, its folders and errors, the Python API and the app's panels.

The heatmap test trains a small CNN, built the way Babysitter builds its classifiers (uint8 in,
preprocessing, a nested backbone, the head, class names), on noise images where the class is
decided by a shape drawn in one random quadrant (a red cross, a blue square). A third class has
no shape: with two classes a model may learn one as "not the other", and that class then has no
place of its own to point at (measured: about a quarter of its heat in the right quadrant, as
chance gives).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import keras
import numpy as np
import pytest
from keras import ops
from PIL import Image, ImageDraw

from training import load_model
from training.cli.parser import main
from training.explain import explain_arrays
from training.model.backbones import get_backbone
from training.model.classifier import build_classifier, build_head
from training.model.gradients import gradient
from training.model.layers import ClassNames, ImagePreprocessing
from training.predict import load_model_file, predict_files

SHAPES = ("cross", "square", "none")
SIZE = 32


def quadrant_image(class_index: int, seed: int, size: int = SIZE) -> tuple[np.ndarray, int]:
    """Noise with the class's shape drawn somewhere inside one random quadrant; the quadrant
    (0 top left, 1 top right, 2 bottom left, 3 bottom right)."""
    rng = np.random.default_rng([class_index, seed])
    pixels = rng.integers(0, 160, (size, size, 3), dtype=np.uint8)
    quadrant = int(rng.integers(4))
    half, r = size // 2, size * rng.uniform(0.12, 0.16)
    cx = (quadrant % 2) * half + rng.uniform(r + 1, half - r - 1)
    cy = (quadrant // 2) * half + rng.uniform(r + 1, half - r - 1)
    image = Image.fromarray(pixels)
    draw = ImageDraw.Draw(image)
    if SHAPES[class_index] == "square":
        draw.rectangle((cx - r, cy - r, cx + r, cy + r), fill=(40, 90, 255))
    elif SHAPES[class_index] == "cross":
        w = r / 3
        draw.rectangle((cx - r, cy - w, cx + r, cy + w), fill=(255, 60, 40))
        draw.rectangle((cx - w, cy - r, cx + w, cy + r), fill=(255, 60, 40))
    return np.asarray(image), quadrant


def quadrant_set(count: int, first_seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    made = [quadrant_image(i % len(SHAPES), first_seed + i) for i in range(count)]
    images = np.stack([m[0] for m in made])
    labels = np.arange(count) % len(SHAPES)
    return images, labels, np.array([m[1] for m in made])


def share_in(heatmap: np.ndarray, quadrant: int) -> float:
    half = heatmap.shape[0] // 2
    top, left = (quadrant // 2) * half, (quadrant % 2) * half
    return float(heatmap[top : top + half, left : left + half].sum() / heatmap.sum())


def babysitter_shaped(backbone: keras.Model, names: tuple[str, ...], size: int) -> keras.Model:
    """uint8 → preprocessing → nested ``backbone`` → Babysitter's head → class names."""
    image = keras.Input((size, size, 3), dtype="uint8", name="image")
    x = keras.layers.Rescaling(1.0, name="to_float")(image)
    x = ImagePreprocessing("tf", name="preprocess")(x)
    features = backbone(x)
    head = build_head(int(features.shape[-1]), len(names), 0.0, 0.0, 0, seed=0)
    return keras.Model(image, ClassNames(list(names))(head(features)))


def small_cnn(size: int) -> keras.Model:
    """Three 3×3 convolutions, two 2×2 pools: an 8×8 map at 32 px."""
    pixels = keras.Input((size, size, 3))
    x = pixels
    for i, filters in enumerate((16, 32, 32)):
        x = keras.layers.Conv2D(
            filters, 3, padding="same", activation="relu", name=f"block{i + 1}_conv"
        )(x)
        if i < 2:
            x = keras.layers.MaxPooling2D(name=f"block{i + 1}_pool")(x)
    return keras.Model(pixels, keras.layers.GlobalAveragePooling2D()(x), name="small_cnn")


@pytest.fixture(scope="module")
def quadrant_model(tmp_path_factory) -> Path:
    """The small CNN trained on the quadrant shapes and saved: what ``explain`` is given."""
    keras.utils.set_random_seed(0)
    model = babysitter_shaped(small_cnn(SIZE), SHAPES, SIZE)
    images, labels, _ = quadrant_set(240, first_seed=0)
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy")
    model.fit(images, labels, epochs=12, batch_size=32, verbose=0)
    path = tmp_path_factory.mktemp("explain") / "shapes.keras"
    model.save(path)
    return path


@pytest.fixture
def shape_files(tmp_path) -> list[Path]:
    """A cross, a square and a noise-only image as PNG files."""
    files = []
    for class_index, name in enumerate(SHAPES):
        path = tmp_path / "images" / f"{name}.png"
        path.parent.mkdir(exist_ok=True)
        Image.fromarray(quadrant_image(class_index, 5000)[0]).save(path)
        files.append(path)
    return files


@pytest.mark.core
def test_heatmaps_put_most_of_their_mass_in_the_quadrant_that_decides_the_class(quadrant_model):
    images, labels, quadrants = quadrant_set(45, first_seed=10_000)
    shapes = labels != SHAPES.index("none")
    found = explain_arrays(load_model_file(quadrant_model), images[shapes])
    assert {(e.method, e.layer) for e in found} == {("gradcam", "block3_conv")}
    shares = np.array(
        [share_in(e.heatmap, q) for e, q in zip(found, quadrants[shapes], strict=True)]
    )
    assert np.mean(shares >= 0.5) >= 0.8, np.round(shares, 2)
    for e in found:
        assert e.heatmap.shape == (SIZE, SIZE)
        assert e.heatmap.min() >= 0.0 and e.heatmap.max() == pytest.approx(1.0)


@pytest.mark.core
def test_the_cli_writes_one_overlay_per_image_and_json(
    quadrant_model, shape_files, tmp_path, capsys
):
    out = tmp_path / "heatmaps"
    files = [str(f) for f in shape_files]
    assert main(["explain", str(quadrant_model), *files, "--out", str(out), "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    predicted = predict_files(load_model_file(quadrant_model), files, top_k=1)
    assert [r["file"] for r in results] == files
    for result, prediction in zip(results, predicted, strict=True):
        assert result["method"] == "gradcam" and result["layer"] == "block3_conv"
        best = prediction["predictions"][0]  # explained: the class predict gives, decoded alike
        assert result["class"] == best["class"]
        assert result["probability"] == pytest.approx(best["probability"], abs=1e-5)
        heatmap = Path(result["heatmap"])
        assert heatmap.parent == out and heatmap.name.endswith(".explain.png")
        with Image.open(heatmap) as png:  # a 32 px image is drawn at 224 px, in colour
            assert (png.format, png.size, png.mode) == ("PNG", (224, 224), "RGB")


@pytest.mark.core
def test_overlays_go_beside_a_model_file_or_into_its_runs_own_folder(
    quadrant_model, shape_files, babysitter_home, tmp_path, capsys
):
    loose = tmp_path / "models" / "shapes.keras"
    loose.parent.mkdir()
    shutil.copy(quadrant_model, loose)
    assert main(["explain", str(loose), str(shape_files[0])]) == 0
    printed = capsys.readouterr().out
    assert f"heatmaps in {loose.parent / 'explain'}" in printed
    assert (loose.parent / "explain" / "cross.explain.png").is_file()

    run = babysitter_home / "runs" / "20260101-000000-shapes-abcd"
    run.mkdir(parents=True)
    shutil.copy(quadrant_model, run / "model.keras")
    assert main(["explain", str(run / "model.keras"), str(shape_files[1])]) == 0
    assert (run / "explain" / "square.explain.png").is_file()
    capsys.readouterr()
    for elsewhere in (babysitter_home / "cache" / "x", babysitter_home / "runs" / "other-run"):
        assert (
            main(
                ["explain", str(run / "model.keras"), str(shape_files[1]), "--out", str(elsewhere)]
            )
            == 1
        )
        assert "inside the run store" in capsys.readouterr().err
        assert not elsewhere.exists()


@pytest.mark.core
def test_a_bad_image_is_named_with_its_reason_and_the_rest_are_explained(
    quadrant_model, shape_files, tmp_path, capsys
):
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("not a picture")
    missing = tmp_path / "missing.png"
    args = [str(missing), str(not_an_image), str(shape_files[0])]
    assert main(["explain", str(quadrant_model), *args, "--out", str(tmp_path / "o")]) == 1
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    lines = captured.out.splitlines()
    assert f"{missing}: error: file not found; check the path" in lines
    assert any(line.startswith(f"{not_an_image}: error: ") for line in lines)
    assert any(line.startswith(f"{shape_files[0]}: cross ") for line in lines), lines

    assert main(["explain", str(tmp_path / "nope.keras"), str(shape_files[0])]) == 1
    assert "Model file not found" in capsys.readouterr().err
    assert (
        main(["explain", str(quadrant_model), str(shape_files[0]), "--out", str(not_an_image)]) == 1
    )
    assert "Expected --out to be a folder" in capsys.readouterr().err


@pytest.mark.core
def test_occlusion_is_the_named_fallback_for_a_backbone_without_convolutions():
    """The backbone only averages the top-left quadrant: occlusion must find it there."""
    pixels = keras.Input((16, 16, 3))
    top_left = keras.layers.Cropping2D(((0, 8), (0, 8)))(pixels)
    backbone = keras.Model(pixels, keras.layers.GlobalAveragePooling2D()(top_left), name="crop")
    model = babysitter_shaped(backbone, ("bright", "dark"), 16)
    logits = model.get_layer("head").get_layer("logits")
    logits.set_weights([np.array([[1.0, -1.0]] * 3), np.array([-1.5, 1.5])])
    rng = np.random.default_rng(0)
    images = rng.integers(0, 40, (3, 16, 16, 3)).astype(np.uint8)
    images[:, :8, :8] = 230  # bright where the model looks: "bright", not saturated

    found = explain_arrays(model, images)
    for e in found:
        assert e.method == "occlusion" and e.layer is None
        assert "no convolutional layer" in e.reason
        assert e.class_name == "bright"
        assert e.heatmap.shape == (16, 16) and e.heatmap.max() == pytest.approx(1.0)
        assert share_in(e.heatmap, 0) >= 0.5


@pytest.mark.core
def test_a_babysitter_classifier_is_cut_after_its_last_conv_block(tmp_path):
    """The real classifier (augmentation, preprocessing, temperature and all), saved and loaded."""
    classifier = build_classifier(get_backbone("VGG16"), ["a", "b"], 32, "none")
    classifier.model.save(tmp_path / "m.keras")
    model = load_model_file(tmp_path / "m.keras")
    images = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3)).astype(np.uint8)
    found = explain_arrays(model, images)
    probabilities = model.predict(images, verbose=0)
    for e, row in zip(found, probabilities, strict=True):
        assert (e.method, e.layer) == ("gradcam", "block5_conv3")
        assert e.probability == pytest.approx(float(row.max()), abs=1e-5)


@pytest.mark.core
def test_a_backbone_whose_maps_are_all_1x1_falls_back_to_occlusion_saying_so():
    pixels = keras.Input((16, 16, 3))
    whole = keras.layers.Conv2D(4, 16, name="whole_image")(pixels)  # one 1×1 map
    backbone = keras.Model(pixels, keras.layers.GlobalAveragePooling2D()(whole))
    model = babysitter_shaped(backbone, ("a", "b"), 16)
    (found,) = explain_arrays(model, np.zeros((1, 16, 16, 3), np.uint8))
    assert found.method == "occlusion"
    assert "every convolutional map of the backbone is 1×1 at 16 px" in found.reason


@pytest.mark.core
def test_the_python_api_explains_paths_pil_images_and_arrays(quadrant_model, shape_files):
    model = load_model(quadrant_model)
    pixels = quadrant_image(SHAPES.index("square"), 7000)[0]
    found = model.explain([shape_files[0], Image.open(shape_files[1]), pixels])
    assert [e.method for e in found] == ["gradcam"] * 3
    assert all(e.class_name in SHAPES and 0 < e.probability <= 1 for e in found)
    assert all(e.heatmap.shape == (SIZE, SIZE) for e in found)


@pytest.mark.core
def test_gradient_is_the_backends_own_and_right():
    x = np.arange(6, dtype="float32").reshape(2, 3)
    dense = keras.layers.Dense(1, use_bias=False, kernel_initializer="ones")
    assert np.allclose(gradient(lambda v: ops.sum(3.0 * v**2), x), 6.0 * x)
    assert np.allclose(gradient(lambda v: ops.sum(dense(v)), x), np.ones_like(x))


@pytest.fixture
def app_run(quadrant_model, babysitter_home, tmp_path):
    """A completed run in the store: the shapes model, and validation predictions in which the
    cross and the square are mistaken for each other (the worst mistakes)."""
    from training.config import TrainConfig
    from training.store import RunStore

    data = tmp_path / "data"  # under the app's data roots (conftest: the test's tmp_path)
    rels = []
    for class_index, name in enumerate(SHAPES):
        (data / name).mkdir(parents=True)
        Image.fromarray(quadrant_image(class_index, 6000)[0]).save(data / name / "a.png")
        rels.append(f"{name}/a.png")
    store = RunStore()
    config = TrainConfig(data=str(data), backbone="VGG16", weights="none", image_size=SIZE)
    run = store.create_run("train", "shapes", config.to_dict(), "fingerprint", str(data))
    shutil.copy(quadrant_model, store.artifact(run.id, "model"))
    wrong = np.array([[0.1, 0.8, 0.1], [0.7, 0.2, 0.1], [0.0, 0.1, 0.9]], np.float32)
    with open(store.artifact(run.id, "predictions"), "wb") as file:
        np.savez(
            file,
            rows=np.arange(3),
            rels=np.array(rels),
            labels=np.arange(3),
            probabilities=wrong,
            class_names=np.array(SHAPES),
        )
    store.set_status(run.id, "completed", summary={"classes": list(SHAPES)})
    return store, store.get_run(run.id)


def captions(at) -> list[str]:
    """The captions of every image on the page."""
    return [img.caption for element in at.get("image") for img in element.proto.imgs]


def test_results_shows_where_it_looked_beside_each_worst_mistake_on_request(app_run):
    from tests.apptest import page

    store, run = app_run
    at = page("results", run_id=run.id)
    assert "predicted square: it looked here" not in captions(at)  # not computed until asked
    at.button(key=f"explain_mistakes_{run.id}").click().run()
    assert not at.exception, [e.value for e in at.exception]
    shown = captions(at)
    assert (
        "predicted square: it looked here" in shown and "predicted cross: it looked here" in shown
    )
    cached = sorted((store.artifact(run.id, "explain") / "mistakes").iterdir())
    assert len(cached) == 2 and all(p.suffix == ".png" for p in cached)

    again = page("results", run_id=run.id)  # drawn from the run's folder: no button any more
    assert "predicted square: it looked here" in captions(again)
    assert not [b for b in again.button if b.key == f"explain_mistakes_{run.id}"]


def test_predict_shows_where_it_looked_for_each_uploaded_image(app_run, shape_files):
    from tests.apptest import page

    _, run = app_run
    at = page("predict", run_id=run.id)
    uploads = [(f.name, f.read_bytes(), "image/png") for f in shape_files[:2]]
    at.file_uploader(key="images").set_value([*uploads, ("bad.png", b"nope", "image/png")])
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    looked = [c for c in captions(at) if "it looked here" in c]
    assert looked == [
        "predicted cross: it looked here (Grad-CAM)",
        "predicted square: it looked here (Grad-CAM)",
    ]
    assert len(at.error) == 1  # the unreadable upload, as before


@pytest.mark.core
def test_a_model_that_is_no_chain_around_its_backbone_falls_back_to_occlusion_saying_so():
    """The head also reads the raw pixels' mean: no cut after the backbone alone gives the
    model's probabilities, so none may stand for it."""
    image = keras.Input((16, 16, 3), dtype="uint8")
    x = keras.layers.Rescaling(1 / 255)(image)
    features = small_cnn(16)(x)
    raw = keras.layers.GlobalAveragePooling2D()(x)
    both = keras.layers.Concatenate()([features, raw])
    probabilities = keras.layers.Dense(2, activation="softmax")(both)
    model = keras.Model(image, ClassNames(["a", "b"])(probabilities))
    (found,) = explain_arrays(model, np.full((1, 16, 16, 3), 100, np.uint8))
    assert found.method == "occlusion"
    assert "not one chain around the backbone" in found.reason
