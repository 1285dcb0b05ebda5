"""One error hierarchy for every backend. Messages say what went wrong and what to do."""

from collections.abc import Callable, Iterator
from contextlib import contextmanager


class PolarisError(Exception):
    """Base class for errors a user can act on; the message carries the fix."""


class InvalidInput(PolarisError):
    """Input the user must fix: a bad argument, file or id (the CLI exits with code 2)."""


class MissingDependency(PolarisError):
    """An optional package is not installed."""

    def __init__(self, package: str, extra: str, purpose: str):
        super().__init__(
            f"{purpose} needs the '{package}' package, which is not installed: "
            f"run `pip install 'polaris[{extra}]'` (or `make setup`)."
        )
        self.package = package
        self.extra = extra


class BackendError(PolarisError):
    """A backend failed while serving a request."""


class BackendUnavailable(BackendError):
    """The backend cannot be reached or loaded at all."""


class ModelNotFound(BackendError):
    """The requested model does not exist on the backend."""


class BackendBusy(BackendError):
    """The backend is serving someone else and did not free up in time."""


class PromptTooLong(BackendError):
    """The prompt does not fit in the model's context window."""


@contextmanager
def translated(mapper: Callable[[Exception], BackendError | None]) -> Iterator[None]:
    """Re-raise a client library's exception as the BackendError `mapper` makes of it.

    The original is dropped (`from None`): it may carry server text with credentials.
    Exceptions the mapper does not know (None) pass through unchanged.
    """
    try:
        yield
    except BackendError:
        raise
    except Exception as exc:
        mapped = mapper(exc)
        if mapped is None:
            raise
        raise mapped from None
