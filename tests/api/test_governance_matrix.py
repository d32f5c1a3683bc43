"""Authorization matrix for the governance and analytics routes (reuses tests/api/test_admin_matrix.py).

Callers: anonymous, a plain user, the owner of team `red`, the owner of team `blue` ("other"),
the admin service key, and an ingest-only key. Team red's namespace holds server `msrv`.
"""

from __future__ import annotations

from typing import Any

import pytest

from mcp_sentinel.kube.errors import AlreadyExists
from tests.api.conftest import AppFactory
from tests.api.test_admin_matrix import AUTHED, CALLERS, Case, _setup, every
from tests.fixtures.clickhouse import *  # noqa: F403 - ch_client, ch_database
from tests.fixtures.kube import *  # noqa: F403 - kube_cluster
from tests.fixtures.kube import LocalKube

N = "mcp-team-red"
ADMIN_ONLY = every(403, **AUTHED, admin=200)
ANY = every(200, **AUTHED)
ADMINISTERS = every(403, **AUTHED, owner=200, admin=200)
GRANT = {"name": "mg", "namespace": N, "serverRef": {"name": "msrv"}, "subject": {"agentID": "bot"},
         "allowedSideEffects": ["read"]}
SESSION = {"name": "ms", "namespace": N, "serverRef": {"name": "msrv"}, "subject": {"agentID": "bot"}}
Q = f"namespace={N}&server=msrv"

MATRIX: list[Case] = [
    *(Case("GET", p, None, ADMIN_ONLY) for p in (
        "/api/events", "/api/events/filter?server=msrv", "/api/stats", "/api/sources", "/api/event-types",
        "/api/dashboard/summary", "/api/analytics/usage", "/api/admin/deployments", "/api/runtime/components")),
    Case("GET", "/api/user/analytics/usage", None, ANY),
    Case("GET", f"/api/runtime/server-events?{Q}", None, ADMINISTERS),
    Case("GET", "/api/runtime/servers", None, ANY),
    Case("GET", "/api/runtime/tools", None, ANY),
    Case("GET", "/api/deployments", None, ANY),
    Case("POST", "/api/runtime/grants", GRANT, ADMINISTERS),
    Case("GET", "/api/runtime/grants", None, ANY),
    Case("GET", f"/api/runtime/grants/{N}/mg", None, ADMINISTERS),
    Case("PATCH", f"/api/runtime/grants/{N}/mg", {"disabled": False}, ADMINISTERS),
    Case("POST", f"/api/runtime/grants/{N}/mg/enable", None, ADMINISTERS),
    Case("POST", "/api/runtime/sessions", SESSION, ADMIN_ONLY),
    Case("GET", "/api/runtime/sessions", None, ANY),
    Case("PATCH", f"/api/runtime/sessions/{N}/ms", {"revoked": False}, ADMINISTERS),
    Case("GET", f"/api/runtime/policy?{Q}", None, ADMINISTERS),
    # Team red's owner matches the grant (agent bot, team red); service keys have no human (401).
    Case("POST", "/api/runtime/adapter/sessions", {"serverName": "msrv", "namespace": N, "agentID": "bot"},
         every(403, **AUTHED, owner=200, admin=401)),
    Case("GET", f"/api/runtime/observability/links?{Q}", None, ADMINISTERS),
    Case("POST", "/api/runtime/actions/restart", {"component": "api"}, every(403, **AUTHED, admin=503)),
    Case("POST", "/api/runtime/servers", {"name": "pub", "scope": "public", "image": "x/y:1"},
         every(403, **AUTHED, admin=200)),
    Case("DELETE", "/api/runtime/servers/mcp-servers/pub", None, every(403, **AUTHED, admin=200)),
    Case("DELETE", f"/api/runtime/sessions/{N}/ms", None, ADMINISTERS),
    Case("DELETE", f"/api/runtime/grants/{N}/mg", None, ADMINISTERS),
]


def _seed(kube: LocalKube) -> None:
    k = kube.kube
    k.ensure_namespace(N)
    for res, body in ((k.servers, {"metadata": {"name": "msrv"}, "spec": {
            "image": "x/msrv:1", "tools": [{"name": "t", "sideEffect": "read"}], "gateway": {"enabled": True}}}),
                      (k.sessions, {"metadata": {"name": "ms"}, "spec": SESSION | {"namespace": None}})):
        body = {"metadata": body["metadata"], "spec": {kk: v for kk, v in body["spec"].items()
                                                        if kk not in ("name", "namespace")}}
        try:
            res.create(N, body)
        except AlreadyExists:
            pass


@pytest.mark.parametrize("caller", CALLERS)
async def test_governance_matrix(
    make_api: AppFactory, kube_cluster: LocalKube, ch_client: Any, ch_database: str, caller: str
) -> None:
    _seed(kube_cluster)
    api = await make_api(clickhouse_db=ch_database, _backends={"kube": kube_cluster.api, "clickhouse": ch_client})
    headers, _names = await _setup(api)
    failures = []
    for case in MATRIX:
        r = await api.client.request(case.method, case.path, json=case.body, headers=headers[caller])
        if r.status_code != case.expect[caller]:
            failures.append(f"{case.method} {case.path}: {r.status_code} != {case.expect[caller]} ({r.text[:160]})")
        elif r.status_code >= 400:
            assert set(r.json()) == {"error", "message"}, r.text
    assert not failures, "\n".join(failures)
