"""Files written whole or not at all.

A full disk or an I/O error part-way through a write must not leave a truncated checkpoint,
cache or model where a later run would trust it. So each is written to a hidden sibling (same
folder, so the rename is atomic) and renamed over its name only when complete; a failure removes
the sibling and is one ``WriteError`` naming the file and the reason, never a traceback.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from training.errors import WriteError

NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def write_error(path: Path, error: OSError) -> WriteError:
    """``error`` met while writing ``path``, said as a user reads it: "disk full" when it is.
    The OS's words for its errno, not ``str(error)`` (which would name the temporary file) nor
    HDF5's (a paragraph with buffer addresses and offsets)."""
    words = os.strerror(error.errno) if error.errno else error.strerror or str(error)
    return WriteError(path, f"disk full ({words})" if error.errno in NO_SPACE else words)


def temp_sibling(path: Path) -> Path:
    """A hidden name beside ``path`` that keeps its ending: Keras checks for ``.keras`` and
    ``.weights.h5``, and NumPy would append ``.npz``."""
    return path.with_name(f".tmp-{uuid.uuid4().hex[:8]}-{path.name}")


def remove(path: Path) -> None:
    """Delete a failed write's leftover, file or folder, if it is there."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path to write ``path``'s content to, renamed over ``path`` when the block
    ends without an error (which leaves ``path`` as it was)."""
    path = Path(path)
    temp = temp_sibling(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield temp
        os.replace(temp, path)
    except OSError as error:
        raise write_error(path, error) from error
    finally:
        remove(temp)


def write_text(path: Path, text: str) -> None:
    """``path.write_text(text)``, all or nothing."""
    with atomic_path(path) as temp:
        temp.write_text(text, encoding="utf-8")


def write_h5(path: Path, save: Callable[[Path], None]) -> None:
    """``save(temp)`` (``save_weights``, ``save``: anything HDF5 writes) all or nothing.

    Keras opens the HDF5 file and, when a write fails, never closes it: the half-written file
    stays open in HDF5 with unflushed metadata, whose flush fails again each time one of its
    objects is freed ("Exception ignored … Can't decrement id ref count"), and a full disk
    ended in a segfault. So a failed save closes what HDF5 still holds in its folder first.
    """
    with atomic_path(path) as temp:
        try:
            save(temp)
        except BaseException:
            release_h5(temp.parent)
            raise


def release_h5(folder: Path) -> None:
    """Close the HDF5 files a failed write left open in ``folder`` (ours, ``.tmp-…``, or Keras'
    own ``tmp…``), emptied first: they are discarded anyway, and the room freed lets the flush
    that closing does succeed, so nothing is left for the garbage collector to fail on."""
    import h5py  # Keras' own dependency; only writers of HDF5 files get here

    for handle in h5py.h5f.get_obj_ids(types=h5py.h5f.OBJ_FILE):
        name = Path(os.fsdecode(handle.name)).resolve()
        if name.parent != folder.resolve() or not name.name.startswith((".tmp-", "tmp")):
            continue
        with contextlib.suppress(OSError):
            os.truncate(name, 0)
        with contextlib.suppress(Exception):
            h5py.File(handle).close()
