"""The sidecar imports mcp_sentinel.policy on its hot path: it must pull in nothing but the stdlib."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import sys
before = set(sys.modules)  # interpreter start-up (site hooks, the editable-install finder)
import mcp_sentinel.policy
roots = {name.split(".")[0] for name in set(sys.modules) - before}
print(sorted(r for r in roots if r not in sys.stdlib_module_names and r != "mcp_sentinel"))
"""


def test_policy_package_imports_only_stdlib() -> None:
    out = subprocess.run([sys.executable, "-I", "-c", PROBE], capture_output=True, text=True, check=True,
                         cwd="/", env=None)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
