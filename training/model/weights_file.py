"""Whether a ``--weights PATH`` file will load into a backbone, told before a job starts.

A job reads the file with Keras' ``model.load_weights`` (``BackboneSpec.build``) only after the
data is audited and cached, so a file that is not HDF5, or was saved from another architecture,
used to fail tens of seconds in. The rules below are the ones ``load_weights`` applies, read with
h5py from the file's structure alone (no values, no Keras):

* A name ending in ``.weights.h5`` is Keras 3's format: one ``vars`` group per layer
  (``layers/conv2d/vars/0`` …), found by path. Every layer of the model must find exactly its
  variables there, with their shapes; groups no layer asks for are ignored (a file saved with the
  ImageNet top loads into the backbone without it).
* Any other ``.h5`` / ``.hdf5`` is the legacy Keras 2 format (the ImageNet ``…_notop.h5`` files):
  the ``layer_names`` attribute and each layer's ``weight_names``, loaded by order, so the file
  must hold as many layers with weights as the model, each with the same count and shapes.

What the model expects comes from building it without weights (:func:`expected_layout`, which
imports Keras). Comparing (:func:`check_layout`) does not, so the app computes a layout once per
backbone and size in a subprocess (``python -m training.model.weights_file NAME SIZE OUT``) and
keeps it; the CLI can call :func:`check_weights_file` directly.
"""

from __future__ import annotations

import json
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from training.atomic import write_h5
from training.errors import WeightsError
from training.model.keras_internals import snake_case

if TYPE_CHECKING:
    from training.model.registry import BackboneSpec

Shape = tuple[int, ...]
KERAS3_SUFFIX = ".weights.h5"
_COMPAT = "_layer_checkpoint_dependencies"  # where Keras 2.13 kept ``layers`` (Keras reads both)


class WeightsFileError(WeightsError):
    """A weights file the job could not load; ``reason`` says why without naming the file."""

    def __init__(self, path: object, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"Weights file '{self.path}': {reason}.")


@dataclass(frozen=True)
class StoredWeights:
    """A weights file's structure as the loader its name selects reads it.

    ``groups`` (Keras 3): each ``vars`` group's path (``""`` at the root) → variable key → shape.
    ``layers`` (legacy): the layers that hold weights, in order: name and shapes (None for a
    weight whose dataset is missing). ``top_level``: legacy model-level weights.
    """

    keras3: bool
    groups: dict[str, dict[str, Shape | None]] = field(default_factory=dict)
    compat: bool = False
    layers: list[tuple[str, list[Shape | None]]] = field(default_factory=list)
    top_level: int = 0


def read_weights(path: str | Path) -> StoredWeights:
    """The structure of ``path``; :class:`WeightsFileError` when it is not HDF5, holds no Keras
    weights, or holds the other format than its name tells Keras to read."""
    import h5py

    path = Path(path)
    if not h5py.is_hdf5(path):
        raise WeightsFileError(path, "not an HDF5 file")
    keras3 = path.name.endswith(KERAS3_SUFFIX)
    try:
        with h5py.File(path, "r") as f:
            return _read_open(f, path, keras3)
    except (OSError, KeyError, ValueError, RuntimeError) as error:  # truncated or damaged
        raise WeightsFileError(path, f"an HDF5 file that cannot be read ({error})") from error


def _read_open(f: Any, path: Path, keras3: bool) -> StoredWeights:
    legacy_root = _legacy_root(f)
    is_keras3 = legacy_root is None and any(k in f for k in ("layers", "vars", _COMPAT))
    if keras3 and not is_keras3:
        raise WeightsFileError(path, _wrong_format(legacy_root is not None, keras3))
    if not keras3 and legacy_root is None:
        raise WeightsFileError(path, _wrong_format(is_keras3, keras3))
    if keras3:
        return StoredWeights(keras3=True, groups=_vars_groups(f), compat=_COMPAT in f)
    layers = [
        (name, _legacy_shapes(legacy_root[name], names))
        for name in _attribute_list(legacy_root, "layer_names")
        if (names := _attribute_list(legacy_root[name], "weight_names"))
    ]
    top = legacy_root.get("top_level_model_weights")
    top_level = len(_attribute_list(top, "weight_names")) if top is not None else 0
    return StoredWeights(keras3=False, layers=layers, top_level=top_level)


def _wrong_format(other_format: bool, keras3: bool) -> str:
    """Why a file holds nothing the loader its name selects can read."""
    if not other_format:
        return "holds no Keras weights (neither Keras 3 `layers/…/vars` groups nor `layer_names`)"
    if keras3:
        return (
            "holds legacy Keras 2 weights (`layer_names`) but its name ends in .weights.h5, "
            "which Keras reads as its own format: rename it to end in .h5"
        )
    return (
        "holds Keras 3 weights (`layers/…/vars`, what save_weights writes) but its name does not "
        "end in .weights.h5, so Keras would read it as a legacy file: rename it to end in "
        ".weights.h5"
    )


def _legacy_root(f: Any) -> Any:
    """The group a legacy loader reads (the root, or ``model_weights`` of a whole-model file),
    None when it lists no layers."""
    root = f["model_weights"] if "layer_names" not in f.attrs and "model_weights" in f else f
    return root if _attribute_list(root, "layer_names") else None


def _attribute_list(group: Any, name: str) -> list[str]:
    """A list attribute as Keras reads it, also when HDF5's header limit split it in chunks
    (``name0``, ``name1`` …)."""
    if name in group.attrs:
        chunks = [group.attrs[name]]
    else:
        chunks = []
        while f"{name}{len(chunks)}" in group.attrs:
            chunks.append(group.attrs[f"{name}{len(chunks)}"])
    return [n.decode("utf8") if hasattr(n, "decode") else str(n) for c in chunks for n in c]


def _legacy_shapes(group: Any, names: list[str]) -> list[Shape | None]:
    return [_shape(group.get(name)) for name in names]


def _shape(item: Any) -> Shape | None:
    return tuple(int(n) for n in item.shape) if hasattr(item, "shape") else None


def _vars_groups(f: Any) -> dict[str, dict[str, Shape | None]]:
    """Every ``vars`` group in a Keras 3 file, by its layer's path."""
    groups: dict[str, dict[str, Shape | None]] = {}

    def visit(name: str, item: Any) -> None:
        if (name == "vars" or name.endswith("/vars")) and hasattr(item, "keys"):
            groups[name.removesuffix("vars").rstrip("/")] = {k: _shape(item[k]) for k in item}

    f.visititems(visit)
    return groups


# -- what a backbone expects --------------------------------------------------------------------


def expected_layout(spec: BackboneSpec, image_size: int) -> dict[str, Any]:
    """What ``spec`` at ``image_size`` asks a weights file for, as JSON-ready lists: the model
    training loads into (``weights=None``, no top, average pooling), saved by Keras itself so
    the Keras 3 paths are the ones its loader visits; the legacy order is Keras 2's."""
    model = spec.build(image_size, None, include_top=False, pooling="avg")
    with tempfile.TemporaryDirectory() as folder:
        saved = Path(folder) / f"expected{KERAS3_SUFFIX}"
        write_h5(saved, model.save_weights)
        groups = read_weights(saved).groups
    legacy = [
        [layer.name, [list(w.shape) for w in layer.trainable_weights + layer.non_trainable_weights]]
        for layer in model.layers
        if layer.weights
    ]
    names = _layer_names(model)
    order = {path: i for i, path in enumerate(names)}  # model order: the first problem is told
    paths = sorted(groups, key=lambda p: (order.get(p, len(order)), p))
    return {
        "backbone": spec.name,
        "image_size": image_size,
        "keras3": {p: [list(groups[p][str(i)]) for i in range(len(groups[p]))] for p in paths},
        "names": names,
        "legacy": legacy,
    }


def _layer_names(model: Any) -> dict[str, str]:
    """Keras 3 file path → layer name, for messages: the loader names a layer's group after its
    class in snake case, numbered when repeated (``conv2d``, ``conv2d_1``)."""
    to_snake_case = snake_case()
    if to_snake_case is None:  # a private helper: messages then show the paths alone
        return {}
    used: dict[str, int] = {}
    names = {}
    for layer in model.layers:
        base = to_snake_case(type(layer).__name__)
        used[base] = used.get(base, -1) + 1
        names[f"layers/{base}" + (f"_{used[base]}" if used[base] else "")] = layer.name
    return names


# -- comparing ----------------------------------------------------------------------------------


def check_layout(
    stored: StoredWeights, layout: dict[str, Any], path: str | Path = "weights file"
) -> None:
    """Raise :class:`WeightsFileError` unless ``load_weights`` would load ``stored`` into the
    model ``layout`` describes (see :func:`expected_layout`)."""
    model = f"{layout['backbone']} at {layout['image_size']} px"
    compare = _keras3_problems if stored.keras3 else _legacy_problems
    problems = compare(stored, layout)
    if problems:
        more = f" (and {len(problems) - 1} more layers differ)" if len(problems) > 1 else ""
        first = problems[0].replace("{model}", model)
        raise WeightsFileError(path, f"made for a different backbone: {first}{more}")


def _keras3_problems(stored: StoredWeights, layout: dict[str, Any]) -> list[str]:
    """Each layer whose variables the Keras 3 loader would not find as the model needs them."""
    problems = []
    for group, shapes in layout["keras3"].items():
        found = _keras3_group(stored, group)
        layer = _layer_label(group, layout.get("names", {}))
        problems += _mismatch(layer, [found.get(str(i)) for i in range(len(found))], shapes)
    return problems


def _keras3_group(stored: StoredWeights, path: str) -> dict[str, Shape | None]:
    """The variables Keras' ``H5IOStore.get`` finds for ``path`` (none when it finds no group)."""
    if path in stored.groups:
        return stored.groups[path]
    if path and stored.compat:
        return stored.groups.get(path.replace("layers", _COMPAT), {})
    return {}


def _layer_label(path: str, names: dict[str, str]) -> str:
    if not path:
        return "the model itself"
    return f"layer {names[path]} ({path})" if path in names else f"layer {path}"


def _legacy_problems(stored: StoredWeights, layout: dict[str, Any]) -> list[str]:
    """What the legacy (by order) loader would refuse: the layer count, then each layer."""
    expected = layout["legacy"]
    if len(stored.layers) != len(expected):
        return [
            f"the file holds weights for {len(stored.layers)} layers, {{model}} has "
            f"{len(expected)} layers with weights"
        ]
    if stored.top_level:
        return [f"the file holds {stored.top_level} model-level weights, {{model}} has none"]
    problems = []
    for (name, found), (model_name, shapes) in zip(stored.layers, expected, strict=True):
        label = f"layer {name}" + (f" (the model's {model_name})" if name != model_name else "")
        problems += _mismatch(label, found, shapes)
    return problems


def _mismatch(layer: str, found: list[Shape | None], shapes: list[list[int]]) -> list[str]:
    """At most one problem for one layer, ``{model}`` left to fill in: count, then shapes."""
    if len(found) != len(shapes):
        return [f"{layer} holds {len(found)} weights, {{model}} expects {len(shapes)}"]
    for index, (got, want) in enumerate(zip(found, shapes, strict=True)):
        if got is None:
            return [f"{layer} names weight {index} but the file has no data for it"]
        if got != tuple(want):
            return [f"{layer} has shape {got}, {{model}} expects {tuple(want)}"]
    return []


def check_weights_file(path: str | Path, spec: BackboneSpec, image_size: int) -> None:
    """Refuse (:class:`WeightsFileError`) a file ``spec`` at ``image_size`` could not load,
    before anything is trained; builds the backbone once, so Keras is imported."""
    check_layout(read_weights(path), expected_layout(spec, image_size), path)


def main(argv: list[str]) -> int:
    """``NAME SIZE OUT``: write the layout of backbone NAME at SIZE px to OUT (JSON)."""
    from training.atomic import write_text
    from training.model.backbones import get_backbone

    name, size, out = argv
    layout = expected_layout(get_backbone(name), int(size))
    write_text(Path(out), json.dumps(layout))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
