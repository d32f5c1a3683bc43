"""The suite's own layout: fixtures come only from plugins and conftests, shared helpers only from
tests/helpers/, and no test module imports another test module (or a conftest).

Parsed, not imported: the import statements of every `tests/**/*.py` file.
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from localstack.config import REPO_ROOT

TESTS = REPO_ROOT / "tests"
FILES = sorted(p for p in TESTS.rglob("*.py") if "__pycache__" not in p.parts)


def imports(path: Path, root: Path = REPO_ROOT) -> Iterator[tuple[int, str, list[str]]]:
    """(line, absolute module, imported names) for each import in `path`, relative ones resolved."""
    package = path.relative_to(root).with_suffix("").parts[:-1]
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, []
        elif isinstance(node, ast.ImportFrom):
            parts = [*package[: len(package) - node.level + 1]] if node.level else []
            yield node.lineno, ".".join([*parts, *([node.module] if node.module else [])]), [a.name for a in node.names]


def is_fixture(obj: object) -> bool:
    return hasattr(obj, "_pytestfixturefunction") or type(obj).__name__ == "FixtureFunctionDefinition"


def problems(path: Path, root: Path = REPO_ROOT) -> list[str]:
    out = []
    for line, module, names in imports(path, root):
        at = f"{path.relative_to(root)}:{line}"
        if "*" in names:
            out.append(f"{at}: star import from {module} (fixtures are plugins: tests/conftest.py)")
        if not module.startswith("tests."):
            continue
        last = module.rsplit(".", 1)[-1]
        if last.startswith("test_") or last == "conftest":
            out.append(f"{at}: imports {module}; shared code goes to tests/helpers/, fixtures to a conftest")
        elif module.split(".")[1] not in ("helpers", "fixtures"):
            out.append(f"{at}: {module} is outside tests/helpers/ and tests/fixtures/")
        elif module.startswith("tests.fixtures.") and "*" not in names:
            loaded = importlib.import_module(module)
            fixtures = [n for n in names if is_fixture(getattr(loaded, n, None))]
            if fixtures:
                out.append(f"{at}: imports fixtures {fixtures} (they come from the plugin, never an import)")
    return out


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(TESTS)) for p in FILES])
def test_imports_follow_the_suite_layout(path: Path) -> None:
    assert problems(path) == []


def test_the_rules_catch_what_they_forbid(tmp_path: Path) -> None:
    bad = tmp_path / "tests" / "area" / "test_bad.py"
    bad.parent.mkdir(parents=True)
    bad.write_text("from tests.fixtures.kube import *\nfrom .test_other import helper\n"
                   "from tests.api.conftest import X\nfrom tests.fixtures.kube import LocalKube, kube_cluster\n"
                   "from tests.deploy.manifests import y\nfrom tests.helpers.api import ADMIN_KEY\n")
    found = problems(bad, tmp_path)
    assert [p.split(":")[1] for p in found] == ["1", "2", "3", "4", "5"], found
    assert "kube_cluster" in found[3] and "LocalKube" not in found[3]
    # and the walk really sees the suite: files and tests.* imports to check
    assert len(FILES) > 100
    assert sum(1 for p in FILES for _, m, _ in imports(p) if m.startswith("tests.")) > 100
