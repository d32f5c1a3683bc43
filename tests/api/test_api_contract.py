"""The OpenAPI document is the API's contract: schemathesis with every check, stateful phase
included, over every route of a real API process with its real backends (tests/api/live_api.py).

Checks (schemathesis `--checks all`): no server error; every status, content type, response
schema and header as documented; schema-valid requests accepted and schema-invalid ones
rejected; undeclared methods answered 405 with a matching `Allow`; no use after delete; created
resources available; authentication not ignored. Routes only a user may call (API keys, agent
tokens, the adapter's sessions) get a second pass as a signed-up user. Example counts are
bounded and generation deterministic, so the run takes a couple of minutes and a failure replays.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers.live_api import ADMIN_KEY, live_api

MAX_EXAMPLES = 10
# What a service key cannot call (401 `a user credential is required`): fuzzed as a user.
USER_ONLY = r"^/api/(user/(api-keys|registry-credentials)|agent-tokens|runtime/adapter)"


@pytest.fixture(scope="module")
def api_url() -> Iterator[str]:
    with live_api() as url:
        yield url


# 413: every body is capped at 64 KiB (functions/api/limits.py, documented on each operation), a
# limit JSON Schema cannot state; a generated body past it is refused as too large, valid or not.
CONFIG = """
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "413", "429"]
[checks.negative_data_rejection]
expected-statuses = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429"]

# A grant's rule lists need unique names (two rules for one tool would be ambiguous), which JSON
# Schema cannot state ("unique by name"): this one operation may refuse a generated body that
# repeats a name with 400. Every other check stays on for it, and for every other operation.
[[operations]]
include-name = "POST /api/runtime/grants"
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "400", "401", "403", "404", "409", "413", "429"]
"""


def schemathesis_run(api_url: str, cwd: Path, auth_header: str, *extra: str) -> tuple[int, str]:
    config = cwd / "schemathesis.toml"
    config.write_text(CONFIG)
    cmd = [
        sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "run", f"{api_url}/api/openapi.json",
        "--checks", "all",
        "--phases", "examples,coverage,fuzzing,stateful",
        "--max-examples", str(MAX_EXAMPLES), "--generation-deterministic",
        "--workers", "1", "--request-timeout", "30", "--no-color",
        "-H", auth_header, *extra,
    ]
    run = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, timeout=540)
    return run.returncode, run.stdout + run.stderr


def failures(report: str) -> str:
    """The report from its failures section on (schemathesis prints them before the summary)."""
    start = report.find("FAILURES")
    return report[start if start >= 0 else 0:][:40000]


def operations_run(report: str) -> int:
    lines = [line for line in report.splitlines() if line.strip().startswith("Tested:")]
    return int(lines[0].split()[-1]) if lines else 0


@pytest.mark.timeout(900)
def test_every_route_honours_the_openapi_contract(api_url: str, tmp_path: Path) -> None:
    code, report = schemathesis_run(api_url, tmp_path, f"x-api-key: {ADMIN_KEY}")
    assert operations_run(report) >= 75, report[-3000:]  # every route ran: not a vacuous pass
    assert code == 0, failures(report)


@pytest.mark.timeout(600)
def test_user_only_routes_honour_the_openapi_contract(api_url: str, tmp_path: Path) -> None:
    email = f"contract-{uuid.uuid4().hex[:8]}@example.com"
    signup = httpx.post(f"{api_url}/api/auth/signup", json={"email": email, "password": "contract-pass-1"})
    assert signup.status_code == 202, signup.text
    login = httpx.post(f"{api_url}/api/auth/login", json={"email": email, "password": "contract-pass-1"})
    assert login.status_code == 200, login.text
    token = login.json()["access_token"]
    code, report = schemathesis_run(
        api_url, tmp_path, f"Authorization: Bearer {token}", "--include-path-regex", USER_ONLY
    )
    assert operations_run(report) >= 10, report[-3000:]
    assert code == 0, failures(report)
