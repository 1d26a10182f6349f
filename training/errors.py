"""One exception family for everything a user can cause and fix.

The CLI prints these without a traceback and exits non-zero; the message always says what was
wrong, where, and what to do (Keras style: "Expected … Received: …").
"""

from __future__ import annotations


class BabysitterError(Exception):
    """An error the user caused and can fix. ``exit_code`` is what the CLI exits with."""

    exit_code = 1


class ConfigError(BabysitterError):
    """A bad argument or configuration value."""


class DataError(BabysitterError):
    """A dataset, archive or image that cannot be used as given."""


class ImageError(DataError):
    """One image file that cannot be decoded; audits report it and go on."""

    def __init__(self, path: object, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class UnsafeArchiveError(DataError):
    """An archive refused before anything was written outside its target."""


class UnusableDatasetError(DataError):
    """A dataset that cannot be trained on (one class, too few images, nothing readable)."""

    exit_code = 2


class WeightsError(BabysitterError):
    """Pretrained weights that cannot be downloaded or loaded."""


class RunNotFoundError(BabysitterError):
    """A run id or model path that does not exist in the store."""


class ModelFileError(BabysitterError):
    """A model file that is not a safe, loadable ``.keras`` file."""


class BackendError(BabysitterError):
    """A feature that needs another Keras backend than the active one."""


class TrainingDiverged(BabysitterError):
    """A fit stopped because its loss exploded; the run is stored as failed with its findings."""

    def __init__(self, message: str, run_id: str, findings: list[dict]):
        super().__init__(message)
        self.run_id = run_id
        self.findings = findings


class ExportError(BabysitterError):
    """An export target that is refused, or a write that failed; the target is left as it was."""


class HomeError(BabysitterError):
    """``$BABYSITTER_HOME`` is not a folder this user can write; nothing can be stored."""

    exit_code = 2


class StoreIndexError(HomeError):
    """The run index (the SQLite file) is missing, empty or damaged while run folders exist;
    ``runs repair`` rebuilds it from them, since the folders are the record of what ran."""


class StoreWriteError(BabysitterError):
    """The run store could not be written (a full disk, an I/O error); what it held is intact."""


class WriteError(BabysitterError):
    """A cache, checkpoint or model file could not be written (a full disk, an I/O error).

    Such files are written under a temporary name and renamed when complete, so nothing
    half-written is left where a later run would read it: the same command, run again, resumes.
    """

    def __init__(self, path: object, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(
            f"Could not write {self.path}: {reason}. Nothing half-written was kept; make room "
            "(or fix the folder) and run the same command again: it resumes from there."
        )
