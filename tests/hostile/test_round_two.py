"""Issue 22, the second hostile round: server roots that open too much, class sets that differ
between splits, flags and weights refused only after a run existed, ``export --force`` over
someone's own model, model-file refusals that did not name the problem, the fault bench's
tracebacks, and symlinks the Datasets page skipped in silence. Each refusal is one message
naming the problem and the file, a non-zero exit, and nothing lost.
"""

from __future__ import annotations

import base64
import json
import marshal
import os
import shutil
import zipfile
from pathlib import Path

import h5py
import keras
import pytest

import app.roots
from app.roots import data_roots, roots_problem
from bench import faults
from tests.apptest import page
from tests.hostile.conftest import snapshot
from tests.imagegen import make_image_folder
from tests.test_predict_export import tiny_model
from training.model.backbones import get_backbone
from training.store import RunStore

FLAGS = ("--backbone", "MobileNetV2", "--weights", "none", "--image-size", "32")
SHORT = ("--epochs-head", "1", "--epochs-finetune", "0", "--batch-size", "4")
"""Few epochs: before its fix, a case that trained did so quickly."""
needs_tensorflow = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="SavedModel and TFLite need TensorFlow"
)


def unchanged(cli, tmp_path, *argv, home_too: bool = True):
    """``argv`` exits non-zero, records no run and changes no file (none under the home either,
    unless ``home_too`` is False: an audit keeps its report in the cache); its outcome."""
    shot = snapshot if home_too else outside_home
    before = shot(tmp_path)
    outcome = cli(*argv)
    assert outcome.code != 0, outcome.out + outcome.err
    assert shot(tmp_path) == before
    assert RunStore().list_runs() == []
    return outcome


def outside_home(root: Path) -> dict[str, str]:
    """Everything under ``root`` but the home, which the conftest places at ``root/home``."""
    return {k: v for k, v in snapshot(root).items() if k != "home" and not k.startswith("home/")}


# -- 3: the app's data roots ----------------------------------------------------------------------

REFUSED_ROOTS = {
    "the whole filesystem": "/",
    "the home's parent": str(Path.home().parent),
    "/etc": "/etc",
    "inside /etc": "/etc/ssl/certs",
    "/root": "/root",
    "/var": "/var",
    "relative": "photos",
}


@pytest.mark.parametrize("case", sorted(REFUSED_ROOTS))
def test_a_root_that_opens_too_much_is_refused_and_ignored(monkeypatch, tmp_path, case):
    given = REFUSED_ROOTS[case]
    monkeypatch.setenv("BABYSITTER_DATA_ROOTS", os.pathsep.join([str(tmp_path), given]))
    home = RunStore.resolve_home()
    assert data_roots(home) == [(home / "datasets").resolve(), tmp_path.resolve()]
    assert f"`{given}` (" in roots_problem(home)


def test_a_refused_root_is_told_once_in_the_server_log(monkeypatch, capsys):
    monkeypatch.setattr(app.roots, "_told", set())
    monkeypatch.setenv("BABYSITTER_DATA_ROOTS", "/")
    for _ in range(3):
        data_roots(RunStore.resolve_home())
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("warning: BABYSITTER_DATA_ROOTS names folders") and "`/`" in line


def test_the_datasets_page_shows_the_refusal_and_the_roots_it_serves(monkeypatch, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    monkeypatch.setenv("BABYSITTER_DATA_ROOTS", os.pathsep.join(["/", str(images)]))
    at = page("datasets")
    (error,) = at.error
    assert "`/` (the whole filesystem)" in error.value
    (served,) = [c.value for c in at.caption if c.value.startswith("Allowed folders")]
    assert f"`{images}`" in served and "`/`" not in served
    at.text_input(key="folder").input("/etc").run()
    at.button(key="add_folder").click().run()
    assert any("Only dataset folders under" in e.value for e in at.error)


# -- 5: class sets across splits ------------------------------------------------------------------


def test_a_class_missing_from_train_is_refused_before_training(cli, tmp_path):
    data = make_image_folder(
        tmp_path / "data", splits={"train": {"a": 3, "b": 3}, "val": {"a": 1, "b": 1, "c": 2}}
    )
    outcome = unchanged(cli, tmp_path, "train", data, *FLAGS, *SHORT, home_too=False)
    assert outcome.code == 2
    assert "class 'c' has images in val but none in train" in outcome.err
    assert str(data) in outcome.err


def test_a_class_missing_from_val_is_named_in_a_warning(cli, tmp_path):
    data = make_image_folder(
        tmp_path / "data", splits={"train": {"a": 3, "b": 3, "c": 3}, "val": {"a": 1, "b": 1}}
    )
    outcome = cli("audit", data)
    assert outcome.code == 0
    assert "no images in val for class(es) 'c': their accuracy is never measured" in outcome.out


# -- 8: flags bound by the backbone, and weights files, before a run exists -----------------------


@pytest.fixture
def data(tmp_path):
    return make_image_folder(tmp_path / "data", {"cat": 4, "dog": 4})


@pytest.mark.parametrize(
    "argv",
    [
        ("train", "--epochs-head", "1", "--epochs-finetune", "1", "--batch-size", "4"),
        ("train", *SHORT),
        ("check",),
    ],
    ids=["train", "train-without-phase-2", "check"],
)
def test_unfreeze_beyond_the_backbones_blocks_is_refused_before_a_run(cli, tmp_path, data, argv):
    command, *rest = argv
    outcome = unchanged(cli, tmp_path, command, data, *FLAGS, *rest, "--unfreeze", "999")
    assert "Expected --unfreeze to be 'all' or an integer in [0, 18] (MobileNetV2 has 18" in (
        outcome.err
    )


def garbage_weights(path: Path) -> str:
    path.write_bytes(b"not weights at all")
    return "not an HDF5 file"


def other_backbone_weights(path: Path) -> str:
    get_backbone("MobileNet").build(32, None).save_weights(path)
    return "made for a different backbone"


@pytest.mark.parametrize("make", [garbage_weights, other_backbone_weights])
def test_an_unloadable_weights_file_is_refused_before_a_run(cli, tmp_path, data, make):
    weights = tmp_path / "w.weights.h5"
    reason = make(weights)
    flags = ("--backbone", "MobileNetV2", "--weights", weights, "--image-size", "32")
    outcome = unchanged(cli, tmp_path, "train", data, *flags, *SHORT)
    assert f"Weights file '{weights}': {reason}" in outcome.err


# -- 9: export --force replaces only Babysitter's own exports -------------------------------------


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "m.keras"
    tiny_model().save(path)
    return path


def plain_keras(path: Path) -> Path:
    tiny_model(("mine", "yours")).save(path)
    return path


def plain_savedmodel(path: Path) -> Path:
    (path / "variables").mkdir(parents=True)
    (path / "saved_model.pb").write_bytes(b"\x08\x01")
    return path


def plain_tflite(path: Path) -> Path:
    path.write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(64))
    return path


@pytest.mark.parametrize(
    ("fmt", "name", "make"),
    [
        ("keras", "plain.keras", plain_keras),
        pytest.param("savedmodel", "saved", plain_savedmodel, marks=needs_tensorflow),
        pytest.param("tflite", "plain.tflite", plain_tflite, marks=needs_tensorflow),
    ],
    ids=["keras", "savedmodel", "tflite"],
)
def test_force_never_replaces_a_model_babysitter_did_not_export(
    cli, tmp_path, model_file, fmt, name, make
):
    target = make(tmp_path / name)
    argv = ("export", model_file, "--format", fmt, "--output", target, "--force")
    outcome = unchanged(cli, tmp_path, *argv, home_too=False)
    assert f"{target} is not one Babysitter wrote (it carries no export marker)" in outcome.err


# -- 11: model files refused by name, without Keras' warnings -------------------------------------


@pytest.fixture(scope="module")
def good_model(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("models") / "good.keras"
    tiny_model().save(path)
    return path


def layer(config: dict, kind: str) -> dict:
    """The model's one layer of class ``kind`` (names get numbered as tests build models)."""
    return next(item for item in config["config"]["layers"] if item["class_name"] == kind)


def os_system_class(config: dict, folder: Path) -> None:
    layer(config, "Rescaling").update(module="os", class_name="system")


def os_registered(config: dict, folder: Path) -> None:
    layer(config, "Rescaling")["registered_name"] = "os>system"


def function(module: str, name: str) -> dict:
    """How Keras serializes a function of ``module`` by name."""
    return {
        "module": module,
        "class_name": "function",
        "config": name,
        "registered_name": "function",
    }


def builtins_exec(config: dict, folder: Path) -> None:
    layer(config, "Dense")["config"]["activation"] = function("builtins", "exec")


def marshalled_lambda(config: dict, folder: Path) -> None:
    touch = eval(f"lambda x: (__import__('pathlib').Path({str(folder / 'RAN')!r}).touch(), x)[1]")
    code = base64.b64encode(marshal.dumps(touch.__code__)).decode()
    layer(config, "Dense")["config"]["activation"] = {
        "class_name": "__lambda__",
        "config": {"value": [code, None, None]},
    }


def get_file_initializer(config: dict, folder: Path) -> None:
    layer(config, "Dense")["config"]["kernel_initializer"] = function("keras.utils", "get_file")


def external_dataset(weights: Path, folder: Path) -> None:
    """The first weight's data moved to another file on the machine (HDF5 external storage)."""
    (folder / "secret.bin").write_bytes(bytes(64))
    with h5py.File(weights, "a") as f:
        found: list[str] = []
        f.visititems(lambda name, item: found.append(name) if hasattr(item, "shape") else None)
        shape, dtype = f[found[0]].shape, f[found[0]].dtype
        del f[found[0]]
        f.create_dataset(found[0], shape, dtype, external=[(str(folder / "secret.bin"), 0, 64)])


HOSTILE_MODELS = {
    "os.system layer class": (os_system_class, "`os.system` is code outside any model"),
    "os>system registered name": (os_registered, "`os.system` is code outside any model"),
    "builtins.exec activation": (builtins_exec, "`builtins.exec` is code outside any model"),
    "marshalled lambda": (marshalled_lambda, "it holds a lambda, marshalled Python code"),
    "get_file initializer": (get_file_initializer, "it calls `keras.utils.get_file`"),
    "external HDF5 dataset": (external_dataset, "its weights hold an external HDF5 dataset"),
}


def hostile_model(good: Path, folder: Path, spoil) -> Path:
    """A copy of ``good`` with its config (or, for an HDF5 spoiler, its weights) spoiled."""
    target = folder / "hostile.keras"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(target, "w") as out:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "config.json" and spoil is not external_dataset:
                config = json.loads(data)
                spoil(config, folder)
                data = json.dumps(config).encode()
            elif info.filename == "model.weights.h5" and spoil is external_dataset:
                weights = folder / "weights.h5"
                weights.write_bytes(data)
                spoil(weights, folder)
                data = weights.read_bytes()
                weights.unlink()
            out.writestr(info.filename, data)
    return target


@pytest.mark.parametrize("case", list(HOSTILE_MODELS))
def test_a_refused_model_file_names_what_it_refused(cli, tmp_path, good_model, recwarn, case):
    spoil, named = HOSTILE_MODELS[case]
    model = hostile_model(good_model, tmp_path, spoil)
    image = make_image_folder(tmp_path / "images", {"cat": 1}) / "cat" / "img_0001.png"
    recwarn.clear()
    outcome = unchanged(cli, tmp_path, "predict", model, image)
    assert outcome.err.startswith(f"error: {model}: ") and outcome.err.count("\n") == 1
    assert named in outcome.err and "could not be deserialized" not in outcome.err
    assert [str(w.message) for w in recwarn if "keras" in w.filename] == []
    assert not (tmp_path / "RAN").exists()


# -- 12: the fault bench's arguments --------------------------------------------------------------


def garbage_report(tmp_path: Path) -> Path:
    (tmp_path / "report.json").write_text('{"rows": [{"fault": "healthy"}]}')
    return tmp_path / "report.json"


BENCH_ARGS = {
    "missing DATA": (lambda tmp: [str(tmp / "no_such_data")], "no_such_data: not a folder"),
    "garbage report": (
        lambda tmp: ["x", "--rejudge", str(garbage_report(tmp))],
        "not a report of `python -m bench.faults --json`",
    ),
    "unknown fault": (lambda tmp: ["demo", "--only", "nosuchfault"], "'nosuchfault'"),
    "backbone path": (lambda tmp: ["demo", "--backbone", "../../x"], "'../../x'"),
}


@pytest.mark.parametrize("case", sorted(BENCH_ARGS))
def test_the_fault_bench_refuses_what_would_run_nothing(capsys, tmp_path, case):
    argv, named = BENCH_ARGS[case]
    code = faults.main(argv(tmp_path))
    captured = capsys.readouterr()
    assert code == 2 and captured.out == "" and "Traceback" not in captured.err
    (line,) = captured.err.splitlines()
    assert line.startswith("error: ") and named in line


# -- 13: the Datasets page names the links it skipped ---------------------------------------------


def test_the_datasets_page_names_the_symlinks_it_skipped(tmp_path):
    outside = make_image_folder(tmp_path / "private", {"x": 1}) / "x" / "img_0001.png"
    pets = make_image_folder(tmp_path / "pets", {"cat": 3, "dog": 3})
    (pets / "cat" / "elsewhere.png").symlink_to(outside)
    at = page("datasets")
    at.text_input(key="folder").input(str(pets)).run()
    at.button(key="add_folder").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any(c.value.startswith("Skipped 1 symbolic link(s)") for c in at.caption)
    (links,) = [t.value for t in at.table if "cat/elsewhere.png" in list(t.value["file"])]
    assert "symlink pointing outside the dataset" in links["reason"][0]
    shutil.rmtree(pets)
