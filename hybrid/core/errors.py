"""Errors a user can cause. Each names the file, line or value at fault and what to do."""


class HybridError(Exception):
    """Base class of every error this package raises on purpose."""


class InputFormatError(HybridError):
    """A file is not in the declared (or detected) format at all."""


class UnknownIdError(HybridError, KeyError):
    """A user or item id that the mapping has never seen."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class StageError(HybridError):
    """A pipeline stage is declared wrongly or cannot run (missing input, cycle...)."""


class DatasetError(HybridError):
    """A bundled or downloaded dataset could not be obtained or failed its checks."""


class ArgumentError(HybridError, ValueError):
    """A bad argument: a value out of range, an unknown name or key, conflicting options."""


class NotFittedError(HybridError, RuntimeError):
    """A model or recommender was used before ``fit`` or ``load``."""
