"""The folders on the server the app may read datasets from, and nothing else.

The app is a web page: whoever reaches it could otherwise name ``/etc`` or someone's photos and
have the folder listed and rendered as thumbnails. So folders are accepted, listed, remembered and
shown only under ``$BABYSITTER_HOME/datasets`` (where uploads are unpacked) and the folders in
``BABYSITTER_DATA_ROOTS`` (``os.pathsep``-separated; the Docker image sets ``/images``).
A refusal reads the same whether the path exists or not, so it reveals nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV = "BABYSITTER_DATA_ROOTS"


def data_roots(home: Path) -> list[Path]:
    """The allowed roots, resolved (links followed): the home's ``datasets/`` (uploads are
    unpacked there) and the folders ``BABYSITTER_DATA_ROOTS`` names, in that order."""
    raw = os.environ.get(ENV, "")
    given = [str(home / "datasets"), *(p.strip() for p in raw.split(os.pathsep) if p.strip())]
    roots: list[Path] = []
    for root in (Path(p).expanduser().resolve() for p in given):
        if root not in roots:
            roots.append(root)
    return roots


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
