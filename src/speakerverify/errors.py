"""User-facing errors: one line, naming the file and the problem, never a traceback."""


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
