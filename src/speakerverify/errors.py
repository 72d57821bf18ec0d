"""User-facing errors: one line, naming the file and the problem, never a traceback.

Every error a user can cause (bad input, a model or store that cannot be used, a recipe typo, an
operating point the model does not have) is one of these classes. The CLI prints them as one line
with exit status 2; the service maps each class to its HTTP status (``service.app``).
"""


class SpeakerVerifyError(Exception):
    """Base class for errors the CLI and the service report as one clear line."""


class AudioError(SpeakerVerifyError):
    """An input recording cannot be used (missing, not audio, empty, too short, silent, NaN...)."""

    def __init__(self, source: str, problem: str) -> None:
        self.source = source
        self.problem = problem
        super().__init__(f"{source}: {problem}")


class DataError(SpeakerVerifyError):
    """A data source (manifest, pickle, trial list, store) is malformed."""


class ModelError(SpeakerVerifyError):
    """A model cannot be found, loaded or used as asked."""


class OperatingPointError(SpeakerVerifyError, ValueError):
    """A decision was asked at an operating point the model's back end does not have (a FAR
    without a stored point, LLR points without a calibration...). Also a ``ValueError``, as the
    bare ``ValueError`` it replaces was."""


class SpeakerNotFound(SpeakerVerifyError):
    """No enrolled speaker has this name."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"no enrolled speaker named {name!r}")


class RecipeError(SpeakerVerifyError):
    """A recipe is missing, malformed, or asks for something unknown."""


class TrainError(SpeakerVerifyError):
    """Training cannot start or continue (run directory in use, nothing to resume, NaN loss...)."""


class StoreBusy(DataError):
    """The store's write lock could not be taken in time (another writer held it); try again
    after ``retry_after`` seconds (the service answers 409 with ``Retry-After``)."""

    def __init__(self, message: str, retry_after: int = 1) -> None:
        self.retry_after = retry_after
        super().__init__(message)


class StoreKeyError(DataError):
    """The store's encryption key is missing, wrong, or given for a store that is not encrypted."""


class LaunchError(SpeakerVerifyError):
    """How the process was started cannot work: a device that is not there (``--device cuda``
    without CUDA), or torchrun's RANK/WORLD_SIZE/LOCAL_RANK that are not integers."""
