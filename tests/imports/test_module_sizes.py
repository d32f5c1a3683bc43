"""No module over 450 lines outside tests: a module that big owns more than one noun (split it by noun)."""

from __future__ import annotations

import subprocess

from localstack.config import REPO_ROOT

LIMIT = 450


def test_no_module_outside_tests_exceeds_the_limit() -> None:
    tracked = subprocess.run(["git", "ls-files", "*.py"], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    files = [f for f in tracked.stdout.split() if not f.startswith("tests/")]
    assert files, "no Python files found: is this a git checkout?"
    too_long = {f: n for f in files if (n := len((REPO_ROOT / f).read_text().splitlines())) > LIMIT}
    assert not too_long, f"split these by noun (limit {LIMIT} lines): {too_long}"
