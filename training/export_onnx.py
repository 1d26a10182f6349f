"""``export --format onnx``: Keras' own ``model.export(format="onnx")``, with its converter checked.

Under TensorFlow Keras converts through ``tf2onnx`` (with ``onnx``); both come with the
``[onnx]`` extra (``pip install "babysitter[onnx]"``, which adds ``onnxruntime`` to run the
file). Keras' JAX path needs ``jax2onnx``, which brings flax, equinox, orbax and the Hugging
Face hub (about thirty packages), so ONNX is exported from TensorFlow, like SavedModel and
LiteRT: the same ``.keras`` file gives the same graph either way. The exported graph keeps the
uint8 input, the preprocessing and every Babysitter layer (they are ``keras.ops`` only).

Babysitter's export marker is an entry of the model's ``metadata_props`` (an ONNX model's own
key/value notes), since a protobuf file cannot carry a trailer.
"""

from __future__ import annotations

import importlib.util
import logging
import warnings
from pathlib import Path

import keras
import numpy as np

from training.errors import ExportError

CONVERTERS = ("tf2onnx", "onnx")
MARKER_KEY = "babysitter_export"
INSTALL = 'pip install "babysitter[onnx]" (tf2onnx, onnx and onnxruntime)'


def require_converter() -> None:
    """Refuse before anything is written when the converter is not installed."""
    missing = [name for name in CONVERTERS if importlib.util.find_spec(name) is None]
    if missing:
        raise ExportError(
            f"ONNX export needs {' and '.join(missing)}, which this Python lacks: {INSTALL}."
        )


def write_onnx(model: keras.Model, path: Path) -> None:
    """``model`` as an ONNX file at ``path``. A loaded model has never been called, which Keras'
    export needs (it reads the input signature from the call), so it is called once first."""
    size = tuple(model.input_shape[1:])
    model(np.zeros((1, *size), dtype=model.inputs[0].dtype))
    quiet = logging.getLogger("tf2onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # its INFO lines (opset, rewriters) are not the user's news
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # Keras' patch of tf2onnx for NumPy 2
            model.export(str(path), format="onnx", verbose=False)
    finally:
        quiet.setLevel(level)


def mark_onnx(path: Path, note: str) -> None:
    """Add Babysitter's marker to the ONNX file at ``path`` (see the module docstring)."""
    import onnx

    proto = onnx.load(str(path))
    if not any(entry.key == MARKER_KEY for entry in proto.metadata_props):
        entry = proto.metadata_props.add()
        entry.key, entry.value = MARKER_KEY, note
        onnx.save(proto, str(path))


def onnx_marked(path: Path) -> bool:
    """Whether the ONNX file at ``path`` carries Babysitter's marker."""
    import onnx

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception:  # protobuf's DecodeError and friends: not an ONNX model at all
        return False
    return any(entry.key == MARKER_KEY for entry in proto.metadata_props)


def not_onnx(path: Path) -> str | None:
    """Why ``path`` is not an ONNX model file (None when it is one)."""
    import onnx

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception:  # protobuf's DecodeError and friends
        return "is not an ONNX file"
    return None if len(proto.graph.node) else "is not an ONNX model (it holds no graph)"
