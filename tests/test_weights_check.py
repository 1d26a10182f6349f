"""A weights file is checked when it is given, as the job would load it.

Files are saved from MobileNetV2 at 32 px without weights (a second): Keras 3's ``.weights.h5``,
and Keras 2's legacy ``.h5`` layout (that of the ImageNet ``…_notop.h5`` files), plus the ways a
file goes wrong. The check must accept exactly what training's ``load_weights`` accepts, so each
file is also loaded the way a job loads it.
"""

from __future__ import annotations

import json
import os
import shutil

import h5py
import pytest
from keras.src.legacy.saving import legacy_h5_format  # Keras' own writer of the legacy layout

from app import weights
from app.common import remember_folder
from tests.imagegen import make_image_folder
from tests.test_app_launch import launch_page, search_command
from training import jobs
from training.errors import WeightsError
from training.model.backbones import get_backbone
from training.model.weights_file import (
    WeightsFileError,
    check_layout,
    check_weights_file,
    expected_layout,
    read_weights,
)
from training.store import RunStore

SIZE = 32
LOADS = {"keras3", "legacy", "keras3 with top"}  # what training loads into MobileNetV2


def legacy_file(model, path):
    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, model)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Weights files by what they hold; only ``LOADS`` fit MobileNetV2 at 32 px."""
    folder = tmp_path_factory.mktemp("weights")
    spec = get_backbone("MobileNetV2")
    notop, top = spec.build(SIZE, None), spec.build(SIZE, None, include_top=True)
    notop.save_weights(folder / "mobilenetv2.weights.h5")
    top.save_weights(folder / "with_top.weights.h5")
    found = {
        "keras3": folder / "mobilenetv2.weights.h5",
        "keras3 with top": folder / "with_top.weights.h5",  # Keras 3 ignores the top's groups
        "legacy": legacy_file(notop, folder / "mobilenetv2_notop.h5"),
        "legacy with top": legacy_file(top, folder / "with_top.h5"),  # by order: one layer more
        "keras3 named .h5": shutil.copy(folder / "mobilenetv2.weights.h5", folder / "k3.h5"),
        "legacy named .weights.h5": shutil.copy(
            folder / "mobilenetv2_notop.h5", folder / "legacy.weights.h5"
        ),
        "random bytes": folder / "random.weights.h5",
        "truncated": folder / "truncated.weights.h5",
        "empty HDF5": folder / "empty.h5",
    }
    found["random bytes"].write_bytes(os.urandom(4096))
    whole = found["keras3"].read_bytes()
    found["truncated"].write_bytes(whole[: len(whole) // 2])
    h5py.File(found["empty HDF5"], "w").close()
    return found


@pytest.fixture(scope="module")
def layouts():
    names = ("MobileNetV2", "MobileNet")
    return {name: expected_layout(get_backbone(name), SIZE) for name in names}


@pytest.fixture(scope="module")
def backbone():
    """The model a job loads a file into (built once: loading replaces every variable)."""
    return get_backbone("MobileNetV2").build(SIZE, None)


def refusal(path, layout) -> str | None:
    try:
        check_layout(read_weights(path), layout, path)
    except WeightsFileError as error:
        return error.reason
    return None


def test_random_bytes_are_not_an_hdf5_file(tmp_path):
    path = tmp_path / "random.weights.h5"
    path.write_bytes(os.urandom(1000))
    with pytest.raises(WeightsFileError, match="not an HDF5 file") as refused:
        read_weights(path)
    assert refused.value.reason == "not an HDF5 file" and str(path) in str(refused.value)


@pytest.mark.parametrize(
    "variant",
    [
        "keras3",
        "keras3 with top",
        "legacy",
        "legacy with top",
        "keras3 named .h5",
        "legacy named .weights.h5",
        "random bytes",
        "truncated",
        "empty HDF5",
    ],
)
def test_the_check_accepts_exactly_what_training_loads(files, layouts, backbone, variant):
    path = files[variant]
    checked = refusal(path, layouts["MobileNetV2"])
    try:  # what ``BackboneSpec.build`` does with a file once it has built the model
        get_backbone("MobileNetV2")._load_file(backbone, path, include_top=False)
        loaded = True
    except WeightsError:
        loaded = False
    assert (checked is None) == loaded, checked
    assert loaded == (variant in LOADS)


def test_a_file_says_which_format_it_holds_when_its_name_says_the_other(files):
    with pytest.raises(WeightsFileError, match=r"rename it to end in \.h5"):
        read_weights(files["legacy named .weights.h5"])
    with pytest.raises(WeightsFileError, match=r"does not end in \.weights\.h5"):
        read_weights(files["keras3 named .h5"])
    with pytest.raises(WeightsFileError, match="holds no Keras weights"):
        read_weights(files["empty HDF5"])


def test_a_file_for_another_backbone_names_the_layer_and_both_shapes(files, layouts):
    with pytest.raises(WeightsFileError) as refused:
        check_weights_file(files["keras3"], get_backbone("MobileNet"), SIZE)
    reason = refused.value.reason
    assert reason.startswith("made for a different backbone: layer conv_pw_1 (layers/conv2d_1)")
    assert "has shape (1, 1, 32, 16), MobileNet at 32 px expects (1, 1, 32, 64)" in reason
    assert refusal(files["legacy"], layouts["MobileNet"]) == (
        "made for a different backbone: the file holds weights for 104 layers, MobileNet at 32 "
        "px has 54 layers with weights"
    )


def keep(cache, layout) -> None:
    """A layout the app keeps, as if an earlier check had worked it out."""
    kept = weights.layout_file(cache, layout["backbone"], layout["image_size"])
    kept.parent.mkdir(parents=True, exist_ok=True)
    kept.write_text(json.dumps(layout))


def test_the_app_works_a_layout_out_once_in_a_subprocess(files, layouts, tmp_path, monkeypatch):
    mobilenet_v2, mobilenet = get_backbone("MobileNetV2"), get_backbone("MobileNet")
    cache = tmp_path / "cache"
    weights.expected.cache_clear()
    assert weights.file_problem(files["keras3"], [mobilenet_v2], SIZE, cache) == (None, None)
    kept = json.loads(weights.layout_file(cache, "MobileNetV2", SIZE).read_text())
    here = json.loads(json.dumps(layouts["MobileNetV2"]))
    assert kept["keras3"] == here["keras3"]  # (layer names differ: Keras numbers unnamed ones)
    assert [shapes for _, shapes in kept["legacy"]] == [shapes for _, shapes in here["legacy"]]

    def no_subprocess(*args, **kwargs):
        raise OSError("no process may start")

    monkeypatch.setattr(weights.subprocess, "run", no_subprocess)
    weights.expected.cache_clear()  # a new server: the kept layout is read back
    assert weights.file_problem(files["legacy"], [mobilenet_v2], SIZE, cache) == (None, None)
    keep(cache, layouts["MobileNet"])
    problem, _ = weights.file_problem(files["keras3"], [mobilenet_v2, mobilenet], SIZE, cache)
    assert problem.startswith("Weights file: made for a different backbone: layer conv_pw_1")
    # A size the backbone refuses is the form's to say; a layout that cannot be had, a note.
    assert weights.file_problem(files["keras3"], [mobilenet_v2], 16, cache) == (None, None)
    problem, note = weights.file_problem(files["keras3"], [mobilenet_v2], 40, cache)
    assert problem is None and "could not be checked against MobileNetV2 at 40 px" in note


def recorded(store: RunStore, args: list[str]) -> jobs.Job:
    return jobs.get_job(store, jobs.record_job(store, list(args)))


def test_the_launch_form_takes_a_file_that_fits_and_refuses_it_for_another_backbone(
    files, layouts, tmp_path, babysitter_home, monkeypatch
):
    monkeypatch.setattr(weights, "can_connect", lambda url, timeout=0: False)
    store = RunStore(babysitter_home)
    remember_folder(store, make_image_folder(tmp_path / "pets", {"cat": 10, "dog": 10}).resolve())
    for layout in layouts.values():  # the subprocess is tested above
        keep(store.cache_dir(), layout)
    at = launch_page()
    at.multiselect(key="backbones").set_value(["MobileNetV2"])
    at.number_input(key="image_size").set_value(SIZE)
    at.selectbox(key="weights").set_value("file")
    at.number_input(key="trials").set_value(2)
    at.number_input(key="stages").set_value(1).run()
    at.file_uploader(key="weights_upload").set_value(
        ("../my net.weights.h5", files["keras3"].read_bytes(), "application/octet-stream")
    )
    at.run()
    upload = babysitter_home / "weights" / "my_net.weights.h5"  # under the home, named safely
    assert not at.error, [e.value for e in at.error]
    assert f"--weights {upload}" in search_command(at)
    monkeypatch.setattr(jobs, "start_job", recorded)  # the job's row, no process
    at.button(key="launch").click().run()
    args = jobs.list_jobs(store)[0].command
    assert args[args.index("--weights") + 1] == str(upload)
    at.multiselect(key="backbones").set_value(["MobileNetV2", "MobileNet"]).run()
    assert at.error[0].value.startswith("Weights file: made for a different backbone")
    assert at.button(key="launch").disabled
