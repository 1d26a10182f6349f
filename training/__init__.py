"""Babysitter's core: data, backbones, model, two-phase fine-tuning, run store and CLI.

``from training import load_model`` loads a trained model for your own code (see
:mod:`training.api`); it is imported on first use, so ``import training`` stays free of Keras.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
"""Babysitter's version, written only here: pyproject.toml reads it (``dynamic = ["version"]``)
and ``babysitter --version`` prints it."""
__all__ = ["TrainedModel", "load_model"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from training import api

        return getattr(api, name)
    raise AttributeError(f"module 'training' has no attribute {name!r}")
