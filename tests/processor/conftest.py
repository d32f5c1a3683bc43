"""Fixtures of the processor tests (helpers: tests/helpers/processor.py)."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from localstack.config import Ports, StackConfig
from localstack.supervisor import Supervisor
from tests.helpers.processor import Proc, start_processor


@pytest.fixture(scope="module")
def proc(clickhouse_stack: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    ports = dataclasses.replace(Ports.free(), clickhouse_http=clickhouse_stack.config.ports.clickhouse_http)
    cfg = StackConfig(data_dir=tmp_path_factory.mktemp("processor"), ports=ports)
    database = f"p_{uuid.uuid4().hex[:10]}"
    with Supervisor(cfg) as sup:
        start_processor(sup, cfg, database)
        yield Proc(cfg.url("processor"), database, clickhouse_stack.url)
