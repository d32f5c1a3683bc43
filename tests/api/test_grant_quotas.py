"""Grant quotas through the API: stored in the CRD (its schema admits them), rendered, refused when bad."""

from __future__ import annotations

from typing import Any

import pytest

from functions.api.app import create_app
from tests.helpers.api import ADMIN_KEY, base_settings
from tests.helpers.governance import Gov, grant

ADMIN = {"x-api-key": ADMIN_KEY}
QUOTAS = [
    {"limit": 100, "windowSeconds": 3600, "per": "session", "sideEffect": "write"},
    {"limit": 5, "windowSeconds": 60, "per": "human", "tool": "search"},
]


async def test_grant_quotas_are_stored_rendered_and_removable(gov: Gov) -> None:
    c = gov.api.client
    r = await c.post("/api/runtime/grants", json=grant(gov, quotas=QUOTAS), headers=gov.owner)
    assert r.status_code == 200, r.text
    stored = [{"limit": 100, "windowSeconds": 3600, "per": "session", "sideEffect": "write"},
              {"limit": 5, "windowSeconds": 60, "per": "human", "tool": "search"}]
    assert r.json()["grant"]["quotas"] == stored
    assert gov.kube.kube.grants.get(gov.ns, "g1")["spec"]["quotas"] == stored  # the CRD schema kept them
    assert gov.policy_file()["grants"][0]["quotas"] == stored  # same camelCase shape in the document
    assert (await c.get(f"/api/runtime/grants/{gov.ns}/g1", headers=gov.owner)).json()["grant"]["quotas"] == stored
    # Re-applying without quotas removes them (a grant's body is its whole spec).
    r = await c.post("/api/runtime/grants", json=grant(gov), headers=gov.owner)
    assert r.status_code == 200 and "quotas" not in r.json()["grant"]
    assert "quotas" not in gov.policy_file()["grants"][0]


@pytest.mark.parametrize(
    ("quotas", "message"),
    [
        ([{"limit": 0, "windowSeconds": 60, "per": "session"}], "limit"),
        ([{"limit": "5", "windowSeconds": 60, "per": "session"}], "limit"),
        ([{"limit": 5, "windowSeconds": 2592001, "per": "session"}], "windowSeconds"),
        ([{"limit": 5, "windowSeconds": 0, "per": "session"}], "windowSeconds"),
        ([{"limit": 5, "windowSeconds": 60}], "per"),
        ([{"limit": 5, "windowSeconds": 60, "per": "team"}], "per"),
        ([{"limit": 5, "windowSeconds": 60, "per": "human", "sideEffect": "launch"}], "sideEffect"),
        ([{"limit": 5, "windowSeconds": 60, "per": "human", "tool": "   "}], "quotas[0].tool"),
        ([QUOTAS[0], dict(QUOTAS[0])], "quotas[1] duplicates quotas[0]"),
        ([QUOTAS[0]] * 21, "quotas"),
    ],
)
async def test_bad_quotas_are_refused_and_nothing_is_written(
    gov: Gov, quotas: list[Any], message: str
) -> None:
    r = await gov.api.client.post("/api/runtime/grants", json=grant(gov, quotas=quotas), headers=ADMIN)
    assert r.status_code == 400, r.text
    assert message in r.json()["message"]
    assert gov.kube.kube.grants.list(gov.ns) == []


def test_openapi_publishes_the_quota_shape() -> None:
    schemas = create_app(base_settings()).openapi()["components"]["schemas"]
    quota = schemas["QuotaIn"]
    assert sorted(quota["required"]) == ["limit", "per", "windowSeconds"]
    props = quota["properties"]
    assert props["limit"]["minimum"] == 1 and props["limit"]["type"] == "integer"
    assert (props["windowSeconds"]["minimum"], props["windowSeconds"]["maximum"]) == (1, 2592000)
    assert props["per"]["enum"] == ["session", "agent", "human"]
    assert props["sideEffect"]["enum"] == ["", "read", "write", "destructive"]
    assert schemas["GrantIn"]["properties"]["quotas"]["items"]["$ref"].endswith("/QuotaIn")
    assert schemas["GrantIn"]["properties"]["quotas"]["maxItems"] == 20
