"""Fixtures of the ingest tests (helpers: tests/helpers/ingest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers.ingest import JWKS


@pytest.fixture(scope="module")
def jwks() -> Iterator[JWKS]:
    j = JWKS()
    yield j
    j.server.shutdown()
