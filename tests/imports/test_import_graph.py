"""What each deployable's cold start loads (structure, not timing: the timings live in bench/import_time.py).

Every check runs in a fresh interpreter and lists which of the named modules ended up in
`sys.modules`. Heavy optional clients must stay out until the configuration or the first request
that needs them; each negative check has a positive twin showing the same probe does see the
module once it is configured, so none of these can pass by probing the wrong thing.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from localstack.config import REPO_ROOT

# Never needed to serve a first request of any of these deployables.
NEVER = ("temporalio", "workflows", "kubernetes", "clickhouse_connect", "chdb", "kafka", "mcp", "uvicorn")
EXAMPLE_POLICY = REPO_ROOT / "examples" / "policies" / "server-a.json"


def loaded(code: str, watch: tuple[str, ...]) -> list[str]:
    """Run `code` in a fresh interpreter; the names in `watch` that are imported afterwards."""
    report = f"import sys, json\nprint(json.dumps([m for m in {watch!r} if m in sys.modules]))\n"
    probe = textwrap.dedent(code) + "\n" + report
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    found: list[str] = json.loads(out.stdout.strip().splitlines()[-1])
    return found


INGEST_APP = """
from functions.ingest.app import create_app
from functions.ingest.settings import IngestSettings
create_app(IngestSettings.from_env({ENV}))
"""
INGEST_WATCH = (*NEVER, "fastapi", "pydantic", "jwt", "cryptography", "aiokafka", "httpx", "psycopg")


def test_ingest_with_keys_loads_no_framework_jwt_or_kafka_client() -> None:
    # aiokafka comes with the first produce (functions/ingest/producer.py), jwt only with a JWKS.
    code = INGEST_APP.replace("{ENV}", repr({"INGEST_API_KEYS": "k#server=ns/s", "KAFKA_BROKERS": "127.0.0.1:9"}))
    assert loaded(code, INGEST_WATCH) == []


def test_ingest_with_oidc_loads_jwt() -> None:
    env = {"KAFKA_BROKERS": "127.0.0.1:9", "OIDC_JWKS_URL": "http://127.0.0.1:9/jwks", "OIDC_ISSUER": "https://i"}
    assert loaded(INGEST_APP.replace("{ENV}", repr(env)), INGEST_WATCH) == ["jwt", "cryptography"]


API_WATCH = (*NEVER, "psycopg", "psycopg_pool", "httpx", "jwt", "cryptography", "aiokafka")


def test_api_import_loads_no_backend_client() -> None:
    # kubernetes/clickhouse-connect/temporalio: first route needing them (functions/api/deps.py);
    # psycopg: IdentityStore.open() in the lifespan; httpx+jwt: OidcVerifier; jwt: TokenIssuer.
    assert loaded("import functions.api.app", API_WATCH) == []


API_APP = """
from functions.api.app import create_app
from functions.api.settings import ApiSettings
app = create_app(ApiSettings.from_env({ENV}))
"""
TOKENS_ENV = {"API_KEYS": "k", "ADMIN_API_KEYS": "a", "JWT_SECRET": "s" * 32}


def test_api_factory_loads_jwt_with_the_first_token_not_before() -> None:
    build = API_APP.replace("{ENV}", repr(TOKENS_ENV))
    assert loaded(build, API_WATCH) == []
    first_token = build + "app.state.ctx.tokens.issue(subject='u1', email='u@example.com', role='user')\n"
    assert loaded(first_token, API_WATCH) == ["jwt", "cryptography"]


ROUTE_MODULES = tuple(f"functions.api.routes.{m}" for m in (
    "health", "auth", "users", "keys", "registry", "admin", "teams", "events", "analytics", "servers",
    "governance", "sessions", "adapter", "policy", "runtime"))


def test_api_cold_start_builds_only_the_probe_routes_then_what_a_request_needs() -> None:
    build = API_APP.replace("{ENV}", repr(TOKENS_ENV))
    assert loaded(build, ROUTE_MODULES) == ["functions.api.routes.health"]
    first_request = build + """
import asyncio, httpx
async def main():
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as c:
        assert (await c.get("/ready")).status_code == 200
        r = await c.get("/api/runtime/grants", headers={"x-api-key": "a"})
        assert r.status_code == 503, r.text  # mounted and answered: no Kubernetes backend here
asyncio.run(main())
"""
    assert loaded(first_request, ROUTE_MODULES) == ["functions.api.routes.health", "functions.api.routes.governance"]


def test_servers_route_loads_the_mcp_client_only_when_it_probes() -> None:
    # The catalog's live inventory (functions/api/inventory.py) imports the mcp client inside the
    # probe: the route module (also built by the background warm-up) must not pull it in.
    watch = ("mcp", "httpx2")
    assert loaded("import functions.api.routes.servers", watch) == []
    probe = """
import asyncio, socket
from functions.api.inventory import ProbeFailed, fetch_inventory
s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
try:
    asyncio.run(fetch_inventory(f"http://127.0.0.1:{port}/mcp", 2.0))
except ProbeFailed as exc:
    assert exc.reason.startswith("unreachable"), exc.reason
"""
    assert loaded(probe, watch) == ["mcp", "httpx2"]


def test_ui_is_starlette_only() -> None:
    code = """
import tempfile
from functions.ui.app import create_app
from functions.ui.settings import UiSettings
create_app(UiSettings.from_env({"UI_SESSION_DIR": tempfile.mkdtemp()}))
"""
    assert loaded(code, (*NEVER, "fastapi", "pydantic", "jwt", "cryptography", "psycopg")) == []


SIDECAR_STATE = """
import dataclasses, pathlib
from mcp_sentinel.policy import AuthBlock, compute_revision, parse_document, to_pretty_json
from sidecar.app import build_state
from sidecar.settings import SidecarSettings
doc = parse_document(pathlib.Path({POLICY!r}).read_bytes())
{EDIT}
path = pathlib.Path({TMP!r}) / "policy.json"
path.write_text(to_pretty_json(dataclasses.replace(doc, revision=compute_revision(doc))))
state = build_state(SidecarSettings.from_env({{"UPSTREAM_URL": "http://127.0.0.1:9", "POLICY_FILE": str(path)}}))
assert state.store.check()
"""
OAUTH = 'doc = dataclasses.replace(doc, auth=AuthBlock(mode="oauth", issuer_url="https://issuer"), revision="")'


def test_sidecar_loads_jwt_only_with_an_oauth_policy(tmp_path: Path) -> None:
    watch = ("jwt", "cryptography")
    header = SIDECAR_STATE.format(POLICY=str(EXAMPLE_POLICY), TMP=str(tmp_path), EDIT="")
    oauth = SIDECAR_STATE.format(POLICY=str(EXAMPLE_POLICY), TMP=str(tmp_path), EDIT=OAUTH)
    assert loaded(header, watch) == []
    # Loaded with the policy (the reload hook), so the first OAuth request does not pay for it.
    assert loaded(oauth, watch) == ["jwt", "cryptography"]


def test_ingest_first_requests_load_no_task_group_backend_or_kafka_client() -> None:
    # The server-span middleware is plain ASGI: no per-request anyio task group, so the first
    # request does not import anyio's backend; answering probes and refusals needs no Kafka client.
    code = """
import asyncio, httpx
from functions.ingest.app import create_app
from functions.ingest.settings import IngestSettings
app = create_app(IngestSettings.from_env({"INGEST_API_KEYS": "k#server=ns/s", "KAFKA_BROKERS": "127.0.0.1:9"}))
async def main():
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ingest") as c:
        assert (await c.get("/live")).json() == {"ok": True}
        assert (await c.post("/events", json={})).status_code == 401
        missing, wrong = await c.get("/nope"), await c.put("/events")
        assert (missing.status_code, missing.json()["error"]) == (404, "not_found"), missing.text
        assert (wrong.status_code, wrong.json()["error"]) == (405, "method_not_allowed"), wrong.text
        assert wrong.headers["allow"] == "POST"
asyncio.run(main())
"""
    assert loaded(code, ("anyio._backends._asyncio", "aiokafka", "jwt")) == []


def test_probe_sees_anyio_backend_when_a_task_group_runs() -> None:
    # Positive twin of the check above: the same probe does see the backend once anyio runs.
    code = """
import anyio
async def main():
    async with anyio.create_task_group():
        pass
anyio.run(main)
"""
    assert loaded(code, ("anyio._backends._asyncio",)) == ["anyio._backends._asyncio"]
