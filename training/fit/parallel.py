"""Data-parallel training on several devices of one machine, through ``keras.distribution``.

Each batch is split across the devices and the weights are replicated (Keras' ``DataParallel``),
so N GPUs train one model about N times as fast. Keras implements this distribution for JAX;
under TensorFlow it is refused with a clear message rather than silently run on one device.

Every batch must split evenly, the last one of an epoch included: :class:`ImageBatches` pads a
short last batch to a multiple of :func:`batch_multiple` (training batches with other real
images, evaluation batches with zero-weight rows), and callers trim predictions back to the rows
they asked for.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import keras

from training.errors import ConfigError
from training.fit.device import accelerators

VIRTUAL_CPU_HINT = "XLA_FLAGS=--xla_force_host_platform_device_count=N"


def resolve_devices(setting: int | str) -> list[str]:
    """The devices one training run uses: "auto" takes every accelerator, an integer N the first N.

    "auto" never splits over CPU devices (virtual CPU devices share the same cores; they exist for
    testing), so a laptop trains as before.
    """
    if setting == "auto":
        found = accelerators()
        return found if len(found) > 1 else []
    wanted = int(setting)
    if wanted <= 1:
        return []
    if keras.backend.backend() != "jax":
        raise ConfigError(
            f"--devices {wanted} needs KERAS_BACKEND=jax: Keras' DataParallel distribution runs "
            f"on JAX only (this run uses {keras.backend.backend()}). Set KERAS_BACKEND=jax, or "
            "train on one device with --devices 1."
        )
    found = accelerators() or keras.distribution.list_devices()
    if len(found) < wanted:
        raise ConfigError(
            f"--devices {wanted} asks for more devices than this machine has ({len(found)}: "
            f"{found}). Use --devices {len(found)} or fewer; for a test on a CPU, start Python "
            f"with {VIRTUAL_CPU_HINT}."
        )
    return list(found[:wanted])


@contextlib.contextmanager
def data_parallel(setting: int | str, batch_size: int) -> Iterator[int]:
    """Build and train inside this scope to split batches over the devices; yields their count."""
    devices = resolve_devices(setting)
    if not devices:
        yield 1
        return
    n = len(devices)
    if batch_size % n:
        raise ConfigError(
            f"--batch-size {batch_size} does not split evenly over {n} devices. Use a multiple "
            f"of {n}, e.g. --batch-size {batch_size + n - batch_size % n}."
        )
    with keras.distribution.DataParallel(devices=devices).scope():
        yield n
