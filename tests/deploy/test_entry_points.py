"""One entry point per function: `python -m functions.<name>`, the container CMD a Knative Service runs.

The Lambda/Mangum handlers and Knative-Functions `new()` factories that once sat beside it were
never built into an image nor named by a manifest; they were removed (README "Deploying"). This
keeps a second, untested shape from coming back unnoticed. Each `__main__` is exercised over HTTP
as a process: tests/api/test_auth_oidc_and_stack.py::test_api_and_postgres_stack_parts,
tests/ingest/test_ingest.py::test_ingest_process_from_stack_part, tests/processor/test_processor.py,
tests/ui/test_ui_process.py.
"""

from __future__ import annotations

import ast

import pytest

from localstack.config import REPO_ROOT

FUNCTIONS = sorted(p.parent.name for p in (REPO_ROOT / "functions").glob("*/__main__.py"))
SECOND_SHAPES = {"handler", "lambda_handler", "new"}


def test_every_function_has_its_process_entry_point() -> None:
    assert FUNCTIONS == ["api", "ingest", "processor", "ui"]


@pytest.mark.parametrize("name", FUNCTIONS)
def test_no_second_entry_point_shape(name: str) -> None:
    for path in sorted((REPO_ROOT / "functions" / name).rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        where = path.relative_to(REPO_ROOT)
        for node in tree.body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                assert node.name not in SECOND_SHAPES, f"{where} defines {node.name}()"
        imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import | ast.ImportFrom)
                    for alias in (node.names if isinstance(node, ast.Import) else [ast.alias(node.module or "")])}
        assert "mangum" not in imported, f"{where} imports mangum"


def test_the_stack_and_the_images_run_the_same_module() -> None:
    docker = {name: (REPO_ROOT / "docker" / f"{name}.Dockerfile").read_text() for name in FUNCTIONS}
    for name, recipe in docker.items():
        assert f'CMD ["python", "-m", "functions.{name}"]' in recipe
        part = (REPO_ROOT / "localstack" / "parts" / f"{name}.py").read_text()
        # The API runs through localstack.api, which injects the local component table and then
        # calls functions.api's own main(): the same module, with one local backend handed in.
        module = "localstack.api" if name == "api" else f"functions.{name}"
        assert f'"-m", "{module}"' in part
    assert "from functions.api.__main__ import main" in (REPO_ROOT / "localstack" / "api.py").read_text()
