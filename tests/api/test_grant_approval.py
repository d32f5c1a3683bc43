"""A grant's `approval` through the grant routes: normalised, stored, rendered; bad ones refused."""

from __future__ import annotations

from typing import Any

import pytest

from functions.api.app import create_app
from tests.api.conftest import base_settings
from tests.api.test_governance import ADMIN, Gov, gov, grant  # noqa: F401 - the gov fixture
from tests.fixtures.kube import *  # noqa: F403 - kube_cluster


async def test_approval_is_normalised_stored_and_rendered(gov: Gov) -> None:  # noqa: F811
    c = gov.api.client
    body = grant(gov, allowedSideEffects=["read", "destructive"],
                 approval={"sideEffects": ["Destructive", "destructive"], "tools": [" search ", "search"]})
    r = await c.post("/api/runtime/grants", json=body, headers=gov.owner)
    assert r.status_code == 200, r.text
    want = {"sideEffects": ["destructive"], "tools": ["search"], "ttlSeconds": 900}
    assert r.json()["grant"]["approval"] == want
    assert gov.policy_file()["grants"][0]["approval"] == want
    # Re-applied without `approval`, the grant no longer asks for one.
    r = await c.post("/api/runtime/grants", json=grant(gov), headers=gov.owner)
    assert "approval" not in r.json()["grant"] and "approval" not in gov.policy_file()["grants"][0]


@pytest.mark.parametrize(
    ("approval", "message"),
    [
        ({}, "approval needs at least one of sideEffects or tools"),
        ({"sideEffects": ["launch"]}, "approval.sideEffects[0] must be read, write, or destructive"),
        ({"tools": ["ok", " "]}, "approval.tools[1] is empty"),
        ({"tools": ["x"], "ttlSeconds": 30}, "ttlSeconds"),
        ({"tools": ["x"], "ttlSeconds": 90000}, "ttlSeconds"),
    ],
)
async def test_bad_approvals_are_refused(gov: Gov, approval: dict[str, Any], message: str) -> None:  # noqa: F811
    r = await gov.api.client.post("/api/runtime/grants", json=grant(gov, approval=approval), headers=ADMIN)
    assert r.status_code == 400, r.text
    assert message in r.json()["message"]
    assert gov.kube.kube.grants.list(gov.ns) == []


def test_openapi_publishes_the_approval_bounds() -> None:
    schemas = create_app(base_settings()).openapi()["components"]["schemas"]
    ttl = schemas["ApprovalIn"]["properties"]["ttlSeconds"]
    assert (ttl["minimum"], ttl["maximum"], ttl["default"]) == (60, 86400, 900)
    assert schemas["GatewayAsk"]["properties"]["ttlSeconds"]["minimum"] == 60
