"""Exception classes of client libraries that are imported lazily (see docs/decisions/deploy.md, "Cold start")."""

from __future__ import annotations

import importlib


def error_type(module: str, name: str) -> type[Exception]:
    """The exception class `module.name`, importing `module` if needed.

    For `except` clauses in code whose client library loads on first use: a clause is evaluated
    only while an exception propagates, by which time the library that raised it is normally
    loaded, so this is a dictionary lookup and keeps the library off the import path.
    """
    error = getattr(importlib.import_module(module), name)
    if not (isinstance(error, type) and issubclass(error, Exception)):
        raise TypeError(f"{module}.{name} is not an exception class")
    return error
