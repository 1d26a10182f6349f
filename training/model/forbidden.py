"""What in a ``.keras`` file's config no model may name, found before Keras parses it.

Keras' safe mode refuses these too, but its message wraps the reason in "Functional could not be
deserialized properly…" and a dump of the (untrusted) config, so a user learns neither what was
refused nor where. Reading the config first names the object: a class or function outside Keras
and Babysitter (``os.system``, ``builtins.exec``), a marshalled lambda, a Lambda layer, or a Keras
function that is not a modelling one (``keras.utils.get_file``, which downloads).
"""

from __future__ import annotations

import builtins
from typing import Any

from training.model.keras_internals import non_modeling_apis

OURS = ("training",)
"""Babysitter's modules: its layers and losses are registered (``babysitter>…``), which Keras
resolves by name; an unregistered one Keras refuses itself, saying so."""
PACKAGES = ("babysitter", "keras")
"""Packages a registered name (``package>Name``) may belong to."""
NON_MODELLING = frozenset({"get_file", "load_model", "save_model", "load_weights", "save_weights"})
"""Keras functions a config may not call (fallback when Keras' own list cannot be read)."""
LAMBDA_LAYER = "it holds a Lambda layer, Python code that is never run from a model file"


def forbidden_object(config: Any) -> str | None:
    """Why the first forbidden object in ``config`` (parsed ``config.json``) is refused, naming
    it; None when nothing in it names code outside Keras and Babysitter."""
    stack = [config]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(reversed(item))
        elif isinstance(item, dict):
            why = _why(item)
            if why:
                return why
            stack.extend(reversed(list(item.values())))
    return None


def _why(item: dict) -> str | None:
    """Why one serialized object (a dict with ``class_name``) is refused, or None."""
    name = item.get("class_name")
    if not isinstance(name, str):
        return None
    if name == "__lambda__":
        return "it holds a lambda, marshalled Python code that is never run from a model file"
    module = item.get("module")
    module = module if isinstance(module, str) else ""
    short = item["config"] if name == "function" and isinstance(item.get("config"), str) else name
    keras_module = module == "keras" or module.startswith("keras.")
    if keras_module and name == "Lambda":
        return LAMBDA_LAYER
    if keras_module and short in _non_modelling():
        return f"it calls `{module}.{short}`, a Keras function that no model may call"
    outside = module and not keras_module and not _ours(module)
    if outside and (module != "builtins" or short in vars(builtins)):  # Keras' "relu" is builtins
        return _outside(short, f"{module}.{short}")
    registered = item.get("registered_name")
    if isinstance(registered, str) and ">" in registered:
        package, _, rest = registered.partition(">")
        if package not in PACKAGES:
            return _outside(rest, f"{package}.{rest}")
    return None


def _outside(short: str, qualified: str) -> str:
    return (
        f"it uses {short!r}, which neither Keras nor Babysitter defines: `{qualified}` is code "
        "outside any model"
    )


def _ours(module: str) -> bool:
    return any(module == m or module.startswith(m + ".") for m in OURS)


def _non_modelling() -> frozenset[str]:
    """Names of the Keras functions Keras itself refuses to deserialize."""
    keras_list = non_modeling_apis()  # a private name: the fallback keeps those touching files
    return NON_MODELLING if keras_list is None else keras_list | NON_MODELLING
