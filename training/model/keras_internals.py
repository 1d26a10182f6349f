"""The model layer's only reads of Keras' private modules, each with a fallback.

Keras has no public list of the functions its safe loader refuses to deserialize, and no public
name for how ``save_weights`` names a layer's group (its class in snake case). Both are read here,
once, so a Keras release that moves them breaks ``tests/test_private_pins.py`` first and the
callers fall back: the forbidden-object check keeps its own list, and weights-file messages show
paths without layer names.
"""

from __future__ import annotations

from collections.abc import Callable


def non_modeling_apis() -> frozenset[str] | None:
    """Short names of the functions Keras' safe loader refuses (None: Keras moved the list)."""
    try:
        from keras.src.saving.serialization_lib import NON_MODELING_APIS
    except ImportError:
        return None
    return frozenset(api.rsplit(".", 1)[-1] for api in NON_MODELING_APIS)


def snake_case() -> Callable[[str], str] | None:
    """Keras' class-name → file-group naming (None: Keras moved it)."""
    try:
        from keras.src.utils.naming import to_snake_case
    except ImportError:
        return None
    return to_snake_case
