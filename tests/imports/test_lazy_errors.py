"""`mcp_sentinel.lazy_errors.error_type`: the class behind a lazily imported library's `except` clause."""

from __future__ import annotations

import json

import pytest

from mcp_sentinel.lazy_errors import error_type


def test_returns_the_named_exception_class() -> None:
    assert error_type("json", "JSONDecodeError") is json.JSONDecodeError
    with pytest.raises(error_type("json", "JSONDecodeError")):
        json.loads("{")


def test_refuses_what_is_not_an_exception_class() -> None:
    with pytest.raises(TypeError, match="json.dumps is not an exception class"):
        error_type("json", "dumps")
    with pytest.raises(ModuleNotFoundError):
        error_type("no_such_module_here", "Error")
