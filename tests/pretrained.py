"""A pretrained backbone for tests, made in seconds without the internet.

ImageNet weights cannot be downloaded in CI, so tests of the default (pretrained) path get a
``.weights.h5`` from the benchmark's own pretraining (``bench/pretrain.py`` on the procedural
source task of ``bench/source_task.py``), scaled down to a few hundred tiny images and one or two
epochs. The weights are not good, but they are *pretrained* in every way the training code
cares about: learned kernels and BatchNorm statistics that are not Keras' initial 0 and 1, so a
test can tell whether fine-tuning kept or changed them.

Use it from a session-scoped fixture in the test module (pytest finds fixtures there or in
conftest.py, and importing a fixture by name trips ruff's F811), for example::

    @pytest.fixture(scope="session")
    def weights_file(tmp_path_factory):
        return make_pretrained_weights(tmp_path_factory.mktemp("pretrained"))
"""

from __future__ import annotations

from pathlib import Path

import keras

from bench.pretrain import pretrain, sidecar_path

__all__ = ["make_pretrained_weights", "sidecar_path"]


def make_pretrained_weights(
    folder: Path,
    backbone: str = "MobileNetV2",
    image_size: int = 32,
    *,
    classes: int = 8,
    images: int = 128,
    epochs: int = 1,
    seed: int = 0,
) -> Path:
    """Pretrain ``backbone`` on a tiny source task; return the ``.weights.h5`` path in ``folder``.

    The defaults take a few seconds of training for MobileNetV2 at 32 px under TensorFlow (eager
    steps); under JAX compiling the training step takes most of the time.
    """
    out = Path(folder) / f"{backbone.lower()}-{image_size}.weights.h5"
    pretrain(
        backbone,
        image_size,
        out,
        classes=classes,
        images=images,
        epochs=epochs,
        seed=seed,
        batch_size=32,
        verbose=0,
        # Tracing TensorFlow's training graph costs more than a few eager steps; JAX's eager
        # steps cost far more than its compile.
        run_eagerly=keras.backend.backend() == "tensorflow",
    )
    return out
