"""What the machine offers and how to use it: precision and XLA chosen once, before building.

On a GPU mixed bfloat16 roughly doubles convolution throughput with no loss scaling needed, and
XLA fuses the many small ops of a backbone; on a CPU both mostly cost time, so "auto" turns them
on only where an accelerator is present. Every choice can be forced from the config.
"""

from __future__ import annotations

from pathlib import Path

import keras


def accelerators() -> list[str]:
    """The GPUs/TPUs Keras sees (empty on a CPU-only machine)."""
    return [
        d
        for d in keras.distribution.list_devices()
        if str(d).split(":")[0].lower() in ("gpu", "tpu", "cuda")
    ]


def accelerator() -> str | None:
    """ "gpu" or "tpu" when Keras sees one, else None (CPU only)."""
    found = accelerators()
    kind = str(found[0]).split(":")[0].lower() if found else None
    return "gpu" if kind == "cuda" else kind


def resolve_precision(precision: str) -> str:
    """The dtype policy name for a config value ("auto" → mixed_bfloat16 on an accelerator)."""
    if precision != "auto":
        return precision
    return "mixed_bfloat16" if accelerator() else "float32"


def apply_precision(precision: str) -> str:
    """Set the global dtype policy (must happen before the model is built); returns its name."""
    policy = resolve_precision(precision)
    keras.config.set_dtype_policy(policy)
    return policy


def resolve_jit(jit: str) -> bool | str:
    """``jit_compile`` for ``model.compile``: Keras' own "auto" on an accelerator, off on a CPU.

    JAX without jit runs op by op (orders of magnitude slower), so there "auto" always compiles.
    """
    if jit == "on":
        return True
    if jit == "off":
        return False
    if keras.backend.backend() == "jax":
        return True
    return "auto" if accelerator() else False


COMPILE_CACHE_MIN_SECONDS = 0.1
"""Compiled programs that took longer than this are kept on disk. A head trial's programs take
a fraction of a second to a few seconds each, and a search compiles a dozen."""


def use_compilation_cache(directory: Path) -> None:
    """Keep the backend's compiled programs in ``directory`` so the next process reuses them.

    JAX has a persistent compilation cache (XLA executables keyed by the program and the
    machine); a second search or train on the same shapes then skips most compilation.
    TensorFlow has no equivalent for Keras' traced functions, so there this does nothing.
    """
    if keras.backend.backend() != "jax":
        return
    import jax
    from jax.experimental.compilation_cache import compilation_cache

    directory = str(directory)
    if jax.config.jax_compilation_cache_dir == directory:
        return
    compilation_cache.reset_cache()  # a process that changes homes must not keep the old one
    jax.config.update("jax_compilation_cache_dir", directory)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", COMPILE_CACHE_MIN_SECONDS)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
