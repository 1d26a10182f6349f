"""``from training import load_model``: a trained model in the user's own code, in a fresh
process (nothing of ours imported first), from raw images of any size."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from PIL import Image

from tests.cli_process import cli_env
from tests.test_predict_export import tiny_model

pytestmark = pytest.mark.core

USER_CODE = """
import json, sys
import numpy as np
from PIL import Image
import training
assert "keras" not in sys.modules, "import training must not load Keras"
from training import load_model
model = load_model(sys.argv[1])
photo = sys.argv[2]
guesses = model.predict([photo, Image.open(photo), np.asarray(Image.open(photo))], top_k=2)
print(json.dumps({"classes": model.class_names, "size": model.image_size, "guesses": guesses}))
"""


def test_load_model_in_a_fresh_process_predicts_from_paths_pil_and_arrays(tmp_path):
    path = tmp_path / "m.keras"
    tiny_model(("cat", "dog")).save(path)
    photo = tmp_path / "photo.jpg"
    Image.new("RGB", (40, 25), (200, 10, 10)).save(photo)
    done = subprocess.run(
        [sys.executable, "-c", USER_CODE, str(path), str(photo)],
        capture_output=True,
        text=True,
        env=cli_env(tmp_path / "home"),
        cwd=tmp_path,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["classes"] == ["cat", "dog"] and out["size"] == 8
    by_path, by_pil, by_array = out["guesses"]
    assert by_path == by_pil == by_array  # the same pixels however the image is given
    assert {name for name, _ in by_path} == {"cat", "dog"}
    assert sum(p for _, p in by_path) == pytest.approx(1.0, abs=1e-5)


def test_load_model_refuses_an_unsafe_file_with_a_message(tmp_path):
    from training import load_model
    from training.errors import ModelFileError

    bad = tmp_path / "m.h5"
    bad.write_bytes(b"x")
    with pytest.raises(ModelFileError, match=r"only \.keras model files"):
        load_model(bad)
