"""Model files and images given to ``predict``: a model file is untrusted input like any other.
Each bad one is refused before Keras parses it or, failing that, by Keras' safe mode, with one
line saying why and what to use instead; no code in it ever runs, and nothing around it changes.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import stat
import struct
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

from tests.hostile.conftest import snapshot
from tests.test_predict_export import tiny_model
from training.model.layers import ClassNames
from training.store import RunStore

pytestmark = pytest.mark.core  # they replace core tests of predict; CI runs them under JAX too

RESAVE = "use a .keras file saved by Babysitter's train, search or export commands"
ONLY_KERAS = "only .keras model files are accepted (no .h5, SavedModel or pickle: they can carry"


def lambda_model(marker: Path) -> keras.Model:
    """The tiny model with a Lambda layer that creates ``marker`` whenever it runs."""
    # Built from source so the path is a literal in the lambda's own code, which Keras saves.
    touch = eval(f"lambda t: (__import__('pathlib').Path({str(marker)!r}).touch(), t)[1]")
    image = keras.Input((8, 8, 3), dtype="uint8")
    x = keras.layers.Lambda(touch)(image)
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Rescaling(1 / 255)(x))
    x = keras.layers.Dense(2, activation="softmax")(x)
    return keras.Model(image, ClassNames(["cat", "dog"], name="class_names")(x))


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """``good.keras`` and ``lambda.keras``, saved once per module (saving is the slow part)."""
    folder = tmp_path_factory.mktemp("models")
    tiny_model().save(folder / "good.keras")
    marker = folder / "LAMBDA_RAN"
    lambda_model(marker).save(folder / "lambda.keras")
    marker.unlink()  # building the model ran it; from here on only a load would
    keras.saving.load_model(folder / "lambda.keras", safe_mode=False)
    assert marker.exists(), "the payload must be live, or refusing it proves nothing"
    marker.unlink()
    return folder


def rewrite(source: Path, target: Path, change) -> Path:
    """A copy of a .keras zip with ``change(name, data)`` applied to every entry."""
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as out:
        for info in src.infolist():
            data = change(info.filename, src.read(info))
            if data is not None:
                out.writestr(info.filename, data)
    return target


def outside_home(root: Path) -> dict[str, str]:
    """Everything under ``root`` but the home, which the conftest places at ``root/home``."""
    return {k: v for k, v in snapshot(root).items() if k != "home" and not k.startswith("home/")}


@pytest.fixture
def image(tmp_path) -> Path:
    path = tmp_path / "photo.png"
    Image.new("RGB", (12, 10), (200, 30, 30)).save(path)
    return path


@pytest.fixture
def refuses(cli, tmp_path, image):
    """``predict MODEL photo.png``: exit 1, one line naming the model, nothing changed."""

    def check(model: Path | str, *phrases: str) -> str:
        before = outside_home(tmp_path)
        outcome = cli("predict", model, image)
        assert outcome.code == 1, outcome.out
        assert outcome.out == ""
        assert outcome.err.startswith("error: ") and outcome.err.count("\n") == 1
        assert str(model) in outcome.err
        for phrase in phrases:
            assert phrase in outcome.err
        assert outside_home(tmp_path) == before
        assert RunStore().list_runs() == []
        return outcome.err

    return check


def test_a_good_model_predicts(cli, models, image):
    """The control: the files the other cases spoil do load and predict."""
    outcome = cli("predict", models / "good.keras", image)
    assert outcome.code == 0
    shown = rf"{re.escape(str(image))}: (cat|dog) \d+\.\d%, (cat|dog) \d+\.\d%\n"
    assert re.fullmatch(shown, outcome.out)


@pytest.mark.parametrize("name", ["model.h5", "model.pkl", "model.weights.h5", "model", "m.zip"])
def test_only_keras_files_are_loaded(refuses, models, tmp_path, name):
    """By suffix first, even for a real Keras zip renamed: .h5 and pickles can carry code."""
    shutil.copy(models / "good.keras", tmp_path / name)
    refuses(tmp_path / name, ONLY_KERAS, "Export the model as .keras.")


@pytest.mark.parametrize("name", ["saved.keras", "savedmodel"])
def test_a_folder_is_refused_as_a_folder(refuses, tmp_path, name):
    """A SavedModel folder, or any folder named like a model file."""
    (tmp_path / name / "variables").mkdir(parents=True)
    (tmp_path / name / "saved_model.pb").write_bytes(b"\x08\x01")
    refuses(tmp_path / name, f"{tmp_path / name}: is a folder; {ONLY_KERAS}")


def test_a_missing_model_file_is_named(refuses, tmp_path):
    refuses(
        tmp_path / "gone.keras",
        f"Model file not found: {tmp_path / 'gone.keras'}. Give a .keras file or a run id",
    )


def test_a_missing_run_id_is_named(refuses, babysitter_home):
    refuses("20990101-nothing", f"No run matches '20990101-nothing' in {babysitter_home}")


@pytest.mark.parametrize("content", [b"", b"definitely not a zip"], ids=["empty", "text"])
def test_a_file_that_is_not_a_zip_is_refused(refuses, tmp_path, content):
    """The advice is the model's (save it again), not the dataset's (``zip -r``)."""
    (tmp_path / "m.keras").write_bytes(content)
    err = refuses(tmp_path / "m.keras", "not a valid .keras file (not a valid zip (", RESAVE)
    assert "zip -r" not in err


def test_a_zip_that_is_not_a_keras_file_is_refused(refuses, tmp_path):
    with zipfile.ZipFile(tmp_path / "m.keras", "w") as archive:
        archive.writestr("holiday/photo.txt", "not a model")
    refuses(tmp_path / "m.keras", "holds no config.json, so it is not a Keras model file", RESAVE)


def symlink_entry() -> zipfile.ZipInfo:
    link = zipfile.ZipInfo("assets/link")
    link.create_system = 3
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    return link


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ("../evil.py", "entry '../evil.py' points outside the folder it is unpacked into (../)"),
        ("/etc/cron.d/evil", "entry '/etc/cron.d/evil' has an absolute path"),
        (symlink_entry(), "entry 'assets/link' is a symbolic link"),
    ],
    ids=["dotdot", "absolute", "symlink"],
)
def test_a_keras_file_with_hostile_entries_is_refused(refuses, models, tmp_path, entry, problem):
    """The dataset archive checks, with the model's advice instead of the dataset's."""
    model = shutil.copy(models / "good.keras", tmp_path / "m.keras")
    with zipfile.ZipFile(model, "a") as archive:
        archive.writestr(entry, "print('owned')")
    err = refuses(model, f"not a valid .keras file ({problem}); {RESAVE}")
    assert "dataset folder" not in err
    assert not list(tmp_path.parent.rglob("evil.py"))


def test_a_lambda_layer_is_refused_and_never_runs(refuses, models, tmp_path):
    """Safe mode: the Lambda's code (it would create a file) is not even deserialized."""
    model = shutil.copy(models / "lambda.keras", tmp_path / "lambda.keras")
    err = refuses(model, "it holds a Lambda layer, Python code that is never run", RESAVE)
    assert "safe_mode=False" not in err  # Keras' own advice is not ours to give
    assert not (models / "LAMBDA_RAN").exists()


@pytest.mark.parametrize(("module", "name"), [("evilmod", "Evil"), ("os", "system")])
def test_an_unregistered_class_is_refused_and_its_module_not_imported(
    refuses, models, tmp_path, monkeypatch, module, name
):
    """A config naming a class outside Keras and Babysitter: nothing is imported to find it."""
    (tmp_path / "evilmod.py").write_text(f"open({str(tmp_path / 'IMPORTED')!r}, 'w').close()\n")
    monkeypatch.syspath_prepend(str(tmp_path))

    def swap(entry: str, data: bytes) -> bytes:
        if entry != "config.json":
            return data
        return (
            data.replace(b'"module": "training.model.layers"', f'"module": "{module}"'.encode())
            .replace(b'"class_name": "ClassNames"', f'"class_name": "{name}"'.encode())
            .replace(b"babysitter>ClassNames", f"{module}>{name}".encode())
        )

    model = rewrite(models / "good.keras", tmp_path / "custom.keras", swap)
    err = refuses(model, f"it uses {name!r}, which neither Keras nor Babysitter defines", RESAVE)
    assert len(err) < 400  # not Keras' page-long dump of the config
    assert not (tmp_path / "IMPORTED").exists()


def test_weights_that_are_not_hdf5_are_refused(refuses, models, tmp_path):
    def spoil(entry: str, data: bytes) -> bytes:
        return b"not an HDF5 file" if entry == "model.weights.h5" else data

    model = rewrite(models / "good.keras", tmp_path / "w.keras", spoil)
    refuses(model, "Keras could not load it safely (OSError: ", RESAVE)


def pad(name: str, megabytes: float):
    """Append whitespace (still valid JSON) to one entry: spaces with a newline now and then,
    which compress about 100× (pure spaces, over 1000×, would trip the ratio limit first)."""
    blank = np.full(int(megabytes * 1024**2), ord(" "), dtype=np.uint8)
    blank[np.random.default_rng(0).random(blank.size) < 0.01] = ord("\n")

    def change(entry: str, data: bytes) -> bytes:
        return data + blank.tobytes() if entry == name else data

    return change


@pytest.fixture
def not_parsed(monkeypatch):
    """Fails the case if Keras is asked to parse the file."""
    calls: list[object] = []

    def parse(*args, **kwargs):
        calls.append(args)
        raise RuntimeError("parsed")

    monkeypatch.setattr("keras.saving.load_model", parse)
    yield
    assert calls == [], "refused only after Keras parsed it"


@pytest.mark.usefixtures("not_parsed")
@pytest.mark.parametrize(
    ("spoil", "problem"),
    [
        (pad("config.json", 20), r"config.json is 20,9"),
        (pad("metadata.json", 17), r"metadata.json is 17,8"),
    ],
    ids=["config", "metadata"],
)
def test_a_huge_config_is_refused_before_parsing(refuses, models, tmp_path, spoil, problem):
    """20 MB of whitespace in a file under 1 MB: parsing it would cost gigabytes."""
    model = rewrite(models / "good.keras", tmp_path / "bloated.keras", spoil)
    assert model.stat().st_size < 1024**2
    refuses(model, problem, "bytes uncompressed, over the 16,777,216-byte limit", "refused before")


@pytest.mark.usefixtures("not_parsed")
def test_too_many_entries_are_refused_before_parsing(refuses, models, tmp_path):
    model = shutil.copy(models / "good.keras", tmp_path / "many.keras")
    with zipfile.ZipFile(model, "a") as archive:
        for i in range(62):
            archive.writestr(f"assets/{i}.txt", "x")
    refuses(model, "not a valid .keras file (65 entries, over the limit of 64)", RESAVE)


@pytest.mark.usefixtures("not_parsed")
def test_assets_over_the_limit_are_refused_before_parsing(refuses, models, tmp_path):
    """The directory declares 70 MB of assets (at a believable 700×): refused unread."""
    model = shutil.copy(models / "good.keras", tmp_path / "assets.keras")
    with zipfile.ZipFile(model, "a", zipfile.ZIP_STORED) as archive:
        archive.writestr("assets/blob.bin", bytes(range(256)) * 400)
    data = bytearray(model.read_bytes())
    struct.pack_into("<L", data, data.rfind(b"PK\x01\x02") + 24, 70 * 1024**2)
    model.write_bytes(bytes(data))
    refuses(model, "bytes besides the weights, over the 67,108,864-byte limit", "refused before")


@pytest.mark.usefixtures("not_parsed")
def test_a_zip_bomb_inside_a_keras_file_is_refused(refuses, models, tmp_path):
    model = shutil.copy(models / "good.keras", tmp_path / "bomb.keras")
    with zipfile.ZipFile(model, "a", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("assets/zeros.bin", bytes(20 * 1024**2))
    refuses(model, "entry 'assets/zeros.bin' expands", "(limit 1000×), like a zip bomb", RESAVE)


@pytest.mark.usefixtures("not_parsed")
def test_a_model_too_big_for_the_memory_left_is_refused(refuses, models, tmp_path, monkeypatch):
    """Parsing takes about 10× the config's size: a 2 MB config needs 20 MB, and 1 MB is left."""
    monkeypatch.setattr("training.predict.available_memory", lambda: 1024**2)
    model = rewrite(models / "good.keras", tmp_path / "m.keras", pad("config.json", 2))
    refuses(model, "needs about 20 MiB of memory and 1 MiB is available; refused before parsing")


def text_file(path: Path) -> Path:
    path.write_text("not a photo")
    return path


def empty_file(path: Path) -> Path:
    path.write_bytes(b"")
    return path


def folder(path: Path) -> Path:
    path.mkdir()
    return path


def truncated_png(path: Path) -> Path:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), "blue").save(buffer, "PNG")
    path.write_bytes(buffer.getvalue()[:60])
    return path


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda tmp: tmp / "gone.png", "file not found; check the path"),
        (lambda tmp: folder(tmp / "folder.png"), "is a folder, not an image file"),
        (lambda tmp: text_file(tmp / "notes.png"), "not an image Pillow can decode"),
        (lambda tmp: truncated_png(tmp / "cut.png"), "truncated or corrupt image data"),
        (lambda tmp: empty_file(tmp / "empty.png"), "is empty (0 bytes)"),
    ],
    ids=["missing", "folder", "text", "truncated", "empty"],
)
def test_a_bad_image_is_reported_and_the_others_predicted(cli, models, tmp_path, make, reason):
    """Each image is judged alone: exit 1 for the bad one, by name; the good one is predicted."""
    model = shutil.copy(models / "good.keras", tmp_path / "m.keras")
    good = tmp_path / "good.png"
    Image.new("RGB", (8, 8), "red").save(good)
    bad = make(tmp_path)
    before = outside_home(tmp_path)
    outcome = cli("predict", model, bad, good, "--json")
    assert outcome.code == 1
    results = {r["file"]: r for r in json.loads(outcome.out)}
    assert reason in results[str(bad)]["error"]
    assert {p["class"] for p in results[str(good)]["predictions"]} == {"cat", "dog"}
    assert outside_home(tmp_path) == before
