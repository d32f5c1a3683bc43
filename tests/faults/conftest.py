"""Fault-injection options: the long forms are marked `slow` and run only with `--runslow` (or SENTINEL_RUNSLOW=1).

`--runslow` is registered here (not in the root conftest); pytest only sees it when this conftest is
an initial one, i.e. `pytest tests/faults --runslow`. The environment variable works from anywhere.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--runslow", action="store_true", default=False, help="run the long fault-injection forms")


def _runslow(config: pytest.Config) -> bool:
    try:
        flag = bool(config.getoption("--runslow"))
    except ValueError:  # option not registered (this conftest was not an initial conftest)
        flag = False
    return flag or os.environ.get("SENTINEL_RUNSLOW", "") not in ("", "0")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _runslow(config):
        return
    skip = pytest.mark.skip(reason="long fault form: use `pytest tests/faults --runslow` or `task faults`")
    for item in items:
        if "slow" in item.keywords and Path(str(item.fspath)).resolve().is_relative_to(HERE):
            item.add_marker(skip)
