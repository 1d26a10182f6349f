"""The folders on the server the app may read datasets from, and nothing else.

The app is a web page: whoever reaches it could otherwise name ``/etc`` or someone's photos and
have the folder listed and rendered as thumbnails. So folders are accepted, listed, remembered and
shown only under ``$BABYSITTER_HOME/datasets`` (where uploads are unpacked) and the folders in
``BABYSITTER_DATA_ROOTS`` (``os.pathsep``-separated; the Docker image sets ``/images``).
A refusal reads the same whether the path exists or not, so it reveals nothing.

A root that would open too much is refused and ignored, with one message (printed once to the
server's log, and shown on the Datasets page): ``/``, a folder holding the user's home, system
folders, and relative paths (they would depend on the folder the server was started in).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from training.store import Layout

ENV = "BABYSITTER_DATA_ROOTS"
SYSTEM_FOLDERS = ("/etc", "/root", "/proc", "/sys", "/dev", "/bin", "/usr", "/boot", "/var")
"""Never a root themselves; they hold configuration, secrets or programs, not datasets."""
NOTHING_INSIDE = ("/etc", "/proc", "/sys", "/dev", "/bin", "/boot")
"""System folders that hold no dataset anywhere inside: a folder under them is refused too."""
_told: set[str] = set()


def data_roots(home: Path) -> list[Path]:
    """The allowed roots, resolved (links followed): the home's ``datasets/`` (uploads are
    unpacked there) and the folders ``BABYSITTER_DATA_ROOTS`` names, in that order; refused
    ones left out, and told once to the server's log (:func:`roots_problem`)."""
    roots_problem(home)
    return _parse(home)[0]


def roots_problem(home: Path) -> str | None:
    """The one message about the roots ``BABYSITTER_DATA_ROOTS`` names and the app ignores, or
    None; printed to the server's log the first time, so whoever started the app sees it."""
    refused = _parse(home)[1]
    if not refused:
        return None
    shown = "; ".join(f"`{given}` ({why})" for given, why in refused)
    message = (
        f"{ENV} names folders the app refuses to serve and ignores: {shown}. Name the folders "
        "that hold the datasets by their absolute paths, e.g. /srv/images."
    )
    if message not in _told:
        _told.add(message)
        print(f"warning: {message}", file=sys.stderr, flush=True)
    return message


def _parse(home: Path) -> tuple[list[Path], list[tuple[str, str]]]:
    """The allowed roots, and each refused entry of ``BABYSITTER_DATA_ROOTS`` with why."""
    raw = os.environ.get(ENV, "")
    roots = [Layout(home).datasets_dir().resolve()]
    refused: list[tuple[str, str]] = []
    for given in (p.strip() for p in raw.split(os.pathsep) if p.strip()):
        why = _why_refused(given)
        if why:
            refused.append((given, why))
        elif (root := Path(given).expanduser().resolve()) not in roots:
            roots.append(root)
    return roots, refused


def _why_refused(given: str) -> str | None:
    """Why one root would open too much, or None when it may be served."""
    path = Path(given).expanduser()
    if not path.is_absolute():
        return "a relative path, which would depend on the folder the server was started in"
    lexical = Path(os.path.normpath(path))
    try:
        user_home = Path.home().resolve()
    except (RuntimeError, KeyError):  # no $HOME and no password entry: nothing to protect
        user_home = None
    for candidate in {lexical, path.resolve()}:
        if candidate == Path(candidate.anchor):
            return "the whole filesystem"
        if user_home is not None and candidate in user_home.parents:
            return f"it holds the home folder {user_home}"
        if candidate == Path("/home"):
            return "it holds the users' home folders"
        for folder in SYSTEM_FOLDERS:
            system = {Path(folder), Path(folder).resolve()}
            if candidate in system or (
                folder in NOTHING_INSIDE and any(candidate.is_relative_to(s) for s in system)
            ):
                return f"the system folder {folder}"
    return None


def within_roots(path: str | Path, roots: list[Path]) -> Path | None:
    """``path`` resolved when it lies under one of ``roots`` (links followed first, so a link
    inside a root cannot point out of it); otherwise None. Relative paths are refused: they
    would depend on where the server was started."""
    candidate = Path(path).expanduser()
    if not candidate.is_absolute():
        return None
    try:
        resolved = candidate.resolve()
    except (OSError, RuntimeError):  # a loop of links, a name too long
        return None
    return resolved if any(resolved.is_relative_to(root) for root in roots) else None


def refusal(roots: list[Path]) -> str:
    """The one message for any folder outside the roots, existing or not."""
    shown = ", ".join(f"`{r}`" for r in roots)
    return (
        f"Only dataset folders under {shown} can be used from the app. Upload a .zip, move the "
        f"folder there, or start the app with {ENV} naming the folders to allow "
        f"(separated by `{os.pathsep}`)."
    )
