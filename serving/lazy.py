"""Lazy imports of heavy optional packages with an install hint when missing."""

import importlib
from types import ModuleType

from serving.errors import MissingDependency


def require(module: str, *, package: str, extra: str, purpose: str) -> ModuleType:
    """Import `module`, or raise MissingDependency naming the pip extra that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        if exc.name and exc.name.split(".")[0] != module.split(".")[0]:
            raise  # the package is there but one of its own imports is broken
        raise MissingDependency(package, extra, purpose) from None
