"""The home folder (``$BABYSITTER_HOME``) checked once, before anything is stored in it.

Every command and every app page starts by opening the run store; a home that is a file, sits
under a missing folder or cannot be written would otherwise surface as whichever OSError or
SQLite error the first write meets. Checked here, it is one message that says how to fix it.
"""

from __future__ import annotations

import os
from pathlib import Path

from training.errors import HomeError


def usable_home(home: Path) -> Path:
    """``home`` as a folder this user can write, created when its parent exists; otherwise one
    message that says what is wrong and how to fix it (the CLI exits 2, the app shows it)."""
    fix = "Set $BABYSITTER_HOME to a folder you can write (it is created if its parent exists)."
    if home.exists() and not home.is_dir():
        raise HomeError(f"$BABYSITTER_HOME is {home}, which is a file, not a folder. {fix}")
    if not home.exists():
        if not home.parent.is_dir():
            raise HomeError(
                f"$BABYSITTER_HOME is {home}, whose parent folder {home.parent} does not exist. "
                f"{fix}"
            )
        try:
            home.mkdir()
        except FileExistsError:
            pass  # another process made it first
        except OSError as error:
            raise HomeError(
                f"$BABYSITTER_HOME {home} could not be created ({error.strerror or error}). {fix}"
            ) from error
    if not os.access(home, os.W_OK | os.X_OK):
        raise HomeError(f"$BABYSITTER_HOME {home} is not writable by this user. {fix}")
    return home
