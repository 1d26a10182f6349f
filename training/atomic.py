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
from collections.abc import Iterator
from pathlib import Path

from training.errors import WriteError

NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def write_error(path: Path, error: OSError) -> WriteError:
    """``error`` met while writing ``path``, said as a user reads it: "disk full" when it is.
    The OS's words, not ``str(error)``, which would name the temporary file."""
    words = error.strerror or str(error)
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
