"""Runtime governance routes against the local Kubernetes API server: scope rules, validation,
policy rendering into the ConfigMap and the local policy file, adapter sessions."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from functions.api.app import create_app
from mcp_sentinel.policy_delivery import read_policy_configmap
from tests.helpers.api import USER_SERVICE_KEY, AppFactory, base_settings
from tests.helpers.governance import ADMIN, TOOLS, Gov, grant


async def test_grant_lifecycle_renders_policy(gov: Gov) -> None:
    c = gov.api.client
    r = await c.post("/api/runtime/grants", json=grant(gov), headers=gov.owner)
    assert r.status_code == 200, r.text
    g = r.json()["grant"]
    assert g["subject"] == {"humanID": gov.member_id, "agentID": "bot", "teamID": gov.team["id"]}
    assert g["disabled"] is False and g["maxTrust"] == "medium" and re.match(r"\d{4}-\d\d-\d\dT.*Z$", g["age"])
    doc = gov.policy_file()
    assert [x["name"] for x in doc["grants"]] == ["g1"] and doc["grants"][0]["team_id"] == gov.team["id"]
    cm = read_policy_configmap(gov.kube.kube.objects, gov.ns, "srv")
    assert cm == (gov.out / gov.ns / "srv.json").read_text()  # same bytes in both delivery targets
    assert "prompt_rules" not in doc["grants"][0]
    assert r.json()["policy"]["revision"] == doc["revision"] and r.json()["policy"]["changed"] is True

    # Re-applying the same grant changes nothing: same text, same generated_at (churn avoidance).
    r = await c.post("/api/runtime/grants", json=grant(gov), headers=gov.owner)
    assert r.json()["policy"] == {"revision": doc["revision"], "changed": False}
    assert gov.policy_file() == doc

    r = await c.patch(f"/api/runtime/grants/{gov.ns}/g1", json={"disabled": True}, headers=gov.owner)
    assert r.json()["disabled"] is True and gov.policy_file()["grants"][0]["disabled"] is True
    # Omitted `disabled` keeps the stored value on update.
    await c.post("/api/runtime/grants", json=grant(gov, maxTrust="high"), headers=gov.owner)
    stored = (await c.get(f"/api/runtime/grants/{gov.ns}/g1", headers=gov.owner)).json()["grant"]
    assert stored["disabled"] is True and stored["maxTrust"] == "high"
    r = await c.post(f"/api/runtime/grants/{gov.ns}/g1/enable", headers=gov.owner)
    assert r.status_code == 200 and "disabled" not in gov.policy_file()["grants"][0]
    assert [x["name"] for x in (await c.get("/api/runtime/grants", headers=gov.owner)).json()["grants"]] == ["g1"]
    r = await c.delete(f"/api/runtime/grants/{gov.ns}/g1", headers=gov.owner)
    assert r.json() == {"success": True, "name": "g1", "namespace": gov.ns, "policy": r.json()["policy"]}
    assert "grants" not in gov.policy_file()
    assert (await c.delete(f"/api/runtime/grants/{gov.ns}/g1", headers=gov.owner)).status_code == 404


async def test_grant_prompt_and_resource_rules_render(gov: Gov) -> None:
    body = grant(gov, promptRules=[{"name": "triage", "decision": "allow"}],
                 resourceRules=[{"name": "ledger", "decision": "deny", "requiredTrust": "high"}])
    r = await gov.api.client.post("/api/runtime/grants", json=body, headers=gov.owner)
    assert r.status_code == 200, r.text
    g = r.json()["grant"]
    assert g["promptRules"] == [{"name": "triage", "decision": "allow"}]
    assert g["resourceRules"] == [{"name": "ledger", "decision": "deny", "requiredTrust": "high"}]
    rendered = gov.policy_file()["grants"][0]
    assert rendered["prompt_rules"] == [{"name": "triage", "decision": "allow", "required_trust": "low"}]
    assert rendered["resource_rules"] == [{"name": "ledger", "decision": "deny", "required_trust": "high"}]


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"subject": {}}, "subject needs at least one of humanID, agentID, teamID"),
        ({"subject": {"teamID": "a b"}}, "subject.teamID must not contain whitespace"),
        ({"allowedSideEffects": []}, "allowedSideEffects needs at least one"),
        ({"allowedSideEffects": ["read", "launch"]}, "allowedSideEffects[1] must be read, write, or destructive"),
        ({"allowedSideEffects": ["read", "read"]}, "allowedSideEffects[1] duplicates read"),
        ({"maxTrust": "ultra"}, "maxTrust must be low, medium, or high"),
        ({"toolRules": [{"name": "x", "decision": "maybe"}]}, "toolRules[0].decision must be allow or deny"),
        ({"toolRules": [{"decision": "allow"}]}, "toolRules[0].name is required"),
        ({"promptRules": [{"name": "p", "decision": "maybe"}]}, "promptRules[0].decision must be allow or deny"),
        ({"resourceRules": [{"name": "r", "decision": "allow"}, {"name": "r", "decision": "deny"}]},
         "resourceRules[1].name duplicates r"),
        ({"name": "Bad_Name"}, "name 'Bad_Name' must be a lowercase DNS-1123 name"),
        ({"subject": "alice"}, "subject"),
    ],
)
async def test_grant_validation(gov: Gov, over: dict[str, Any], message: str) -> None:
    r = await gov.api.client.post("/api/runtime/grants", json=grant(gov, **over), headers=ADMIN)
    assert r.status_code == 400, r.text
    assert message in r.json()["message"]
    assert gov.kube.kube.grants.list(gov.ns) == []  # nothing half-written


@pytest.mark.parametrize(
    ("over", "status", "message"),
    [
        # Well-formed bodies the state refuses: not a 400 (the OpenAPI contract, tests/api/test_api_contract.py).
        ({"serverRef": {"name": "srv", "namespace": "elsewhere"}}, 403, 'serverRef.namespace "elsewhere" must match'),
        ({"serverRef": {"name": "ghost"}}, 404, 'unknown serverRef: MCPServer "ghost" not found'),
        # Names are matched exactly and decisions are the enum: no trimming or case folding.
        ({"promptRules": [{"name": " triage ", "decision": "allow"}]}, 400,
         "promptRules[0].name must not start or end with whitespace"),
        ({"toolRules": [{"name": "x", "decision": "ALLOW"}]}, 400, "toolRules[0].decision must be allow or deny"),
    ],
)
async def test_grant_refusals_beyond_the_shape(gov: Gov, over: dict[str, Any], status: int, message: str) -> None:
    r = await gov.api.client.post("/api/runtime/grants", json=grant(gov, **over), headers=ADMIN)
    assert r.status_code == status and message in r.json()["message"], r.text
    assert gov.kube.kube.grants.list(gov.ns) == []


async def test_grant_scope_rules(gov: Gov) -> None:
    c = gov.api.client
    r = await c.post("/api/runtime/grants", json=grant(gov), headers=gov.member)
    assert r.status_code == 403 and r.json()["message"] == "forbidden server"
    r = await c.post("/api/runtime/grants", json=grant(gov), headers=gov.other)
    assert r.status_code == 403 and r.json()["message"] == "forbidden namespace"
    r = await c.post("/api/runtime/grants", json=grant(gov, namespace="mcp-servers", serverRef={"name": "server-a"}),
                     headers=gov.owner)
    assert r.status_code == 403 and r.json()["message"] == "forbidden namespace"  # shared catalog protected
    # Namespace defaults to the caller's team namespace.
    r = await c.post("/api/runtime/grants", json=grant(gov, namespace=""), headers=gov.owner)
    assert r.status_code == 200 and r.json()["grant"]["namespace"] == gov.ns
    # Cross-team delegation: an explicit foreign team id is kept.
    r = await c.post("/api/runtime/grants", json=grant(gov, name="g2", subject={"teamID": "partner-team"}),
                     headers=gov.owner)
    assert r.json()["grant"]["subject"] == {"teamID": "partner-team"}
    assert (await c.get("/api/runtime/grants", headers=gov.member)).json() == {"grants": []}
    r = await c.get("/api/runtime/grants", params={"namespace": gov.ns}, headers=gov.other)
    assert r.status_code == 403
    assert (await c.get(f"/api/runtime/grants/{gov.ns}/g1", headers=gov.member)).status_code == 403
    assert (await c.get(f"/api/runtime/grants/{gov.ns}/g1", headers=gov.other)).status_code == 403
    assert (await c.patch(f"/api/runtime/grants/{gov.ns}/g1", json={}, headers=gov.owner)).json()["message"] == \
        "disabled is required"
    admin_list = (await c.get("/api/runtime/grants", params={"namespace": gov.ns}, headers=ADMIN)).json()
    assert sorted(x["name"] for x in admin_list["grants"]) == ["g1", "g2"]


async def test_sessions_admin_apply_and_revoke(gov: Gov) -> None:
    c = gov.api.client
    body = {"name": "s1", "namespace": gov.ns, "serverRef": {"name": "srv"},
            "subject": {"humanID": "h", "agentID": "bot"}, "consentedTrust": "low",
            "expiresAt": "2099-01-01T01:00:00+01:00"}
    r = await c.post("/api/runtime/sessions", json=body, headers=gov.owner)
    assert r.status_code == 403 and r.json()["message"] == "admin role required"
    r = await c.post("/api/runtime/sessions", json={**body, "expiresAt": "tomorrow"}, headers=ADMIN)
    assert r.status_code == 400 and "expiresAt" in r.json()["message"]
    r = await c.post("/api/runtime/sessions", json=body, headers=ADMIN)
    assert r.status_code == 200, r.text
    assert r.json()["session"]["expiresAt"] == "2099-01-01T00:00:00Z"
    assert gov.policy_file()["sessions"][0]["name"] == "s1"
    # The team owner administers the server, so it may revoke; the member may not.
    assert (await c.patch(f"/api/runtime/sessions/{gov.ns}/s1", json={"revoked": True},
                          headers=gov.member)).status_code == 403
    r = await c.patch(f"/api/runtime/sessions/{gov.ns}/s1", json={"revoked": True}, headers=gov.owner)
    assert r.json()["revoked"] is True and gov.policy_file()["sessions"][0]["revoked"] is True
    assert (await c.patch(f"/api/runtime/sessions/{gov.ns}/s1", json={}, headers=gov.owner)).status_code == 400
    r = await c.post("/api/runtime/sessions", json=body, headers=ADMIN)  # omitted revoked is preserved
    assert r.json()["session"]["revoked"] is True
    assert (await c.post(f"/api/runtime/sessions/{gov.ns}/s1/unrevoke", headers=gov.owner)).json()["revoked"] is False
    assert [s["name"] for s in (await c.get("/api/runtime/sessions", headers=gov.owner)).json()["sessions"]] == ["s1"]
    assert (await c.delete(f"/api/runtime/sessions/{gov.ns}/s1", headers=gov.owner)).status_code == 200
    assert "sessions" not in gov.policy_file()
    assert (await c.get(f"/api/runtime/sessions/{gov.ns}/s1", headers=ADMIN)).status_code == 404


async def test_adapter_sessions(gov: Gov) -> None:
    c = gov.api.client
    # No maxTrust on the grant: the consented trust is capped at low (§11.9, matching the renderer).
    body = grant(gov)
    del body["maxTrust"]
    assert (await c.post("/api/runtime/grants", json=body, headers=ADMIN)).status_code == 200
    ask = {"serverName": "srv", "agentID": "bot", "requestedTrust": "high", "requestedTTL": "10m"}
    r = await c.post("/api/runtime/adapter/sessions", json=ask, headers=gov.member)
    assert r.status_code == 200, r.text
    s = r.json()
    assert re.fullmatch(r"adapter-[0-9a-f]{16}", s["name"]) and s["consentedTrust"] == "low"
    assert s["namespace"] == gov.ns and s["humanID"] == gov.member_id and s["teamID"] == gov.team["id"]
    assert s["reused"] is False
    binding = gov.policy_file()["sessions"][0]
    assert binding["name"] == s["name"] and binding["consented_trust"] == "low"
    again = (await c.post("/api/runtime/adapter/sessions", json=ask, headers=gov.member)).json()
    assert again["reused"] is True and again["name"] == s["name"] and again["expiresAt"] == s["expiresAt"]
    # A session an administrator revoked is not revived by asking again.
    await c.patch(f"/api/runtime/sessions/{gov.ns}/{s['name']}", json={"revoked": True}, headers=ADMIN)
    r = await c.post("/api/runtime/adapter/sessions", json=ask, headers=gov.member)
    assert r.status_code == 403 and r.json()["error"] == "session_revoked"
    # Other agents, other people, service keys, bad input.
    r = await c.post("/api/runtime/adapter/sessions", json={**ask, "agentID": "intruder"}, headers=gov.member)
    assert r.status_code == 403
    r = await c.post("/api/runtime/adapter/sessions", json={**ask, "namespace": gov.ns}, headers=gov.other)
    assert r.status_code == 403
    assert (await c.post("/api/runtime/adapter/sessions", json=ask,
                         headers={"x-api-key": USER_SERVICE_KEY})).status_code == 401
    for bad, msg in (({"requestedTTL": "forever"}, "requestedTTL"), ({"requestedTTL": "-5m"}, "requestedTTL"),
                     ({"agentID": ""}, "agentID is required"), ({"requestedTrust": "max"}, "requestedTrust"),
                     ({"serverName": "../x"}, "serverName")):
        r = await c.post("/api/runtime/adapter/sessions", json={**ask, **bad}, headers=gov.member)
        assert r.status_code == 400 and msg in r.json()["message"], (bad, r.text)
    r = await c.post("/api/runtime/adapter/sessions", json={**ask, "serverName": "ghost"}, headers=gov.member)
    assert r.status_code == 404


async def test_adapter_session_names_are_random_not_derived_from_the_identity(gov: Gov) -> None:
    # Upstream named the session sha256(human, agent, team, server)[:16]: anyone could compute a
    # victim's session header. Names must be fresh randomness, and the caller's session is found by its spec.
    import hashlib

    c = gov.api.client
    assert (await c.post("/api/runtime/grants", json=grant(gov), headers=ADMIN)).status_code == 200
    ask = {"serverName": "srv", "agentID": "bot", "requestedTrust": "low", "requestedTTL": "10m"}
    derived = "adapter-" + hashlib.sha256(
        "\x00".join((gov.member_id, "bot", gov.team["id"], "srv")).encode()).hexdigest()[:16]
    names = []
    for _ in range(3):  # the same identity, three times: mint, reuse, then (after deletion) mint again
        first = (await c.post("/api/runtime/adapter/sessions", json=ask, headers=gov.member)).json()
        again = (await c.post("/api/runtime/adapter/sessions", json=ask, headers=gov.member)).json()
        assert again["reused"] is True and again["name"] == first["name"]  # found by spec, not by name
        assert re.fullmatch(r"adapter-[0-9a-f]{16}", first["name"]) and first["name"] != derived
        names.append(first["name"])
        assert (await c.delete(f"/api/runtime/sessions/{gov.ns}/{first['name']}", headers=ADMIN)).status_code == 200
    assert len(set(names)) == 3, names  # two sessions for the same identity never share a name
    # A changed trust updates the caller's existing session in place (no second session, same name).
    await c.post("/api/runtime/grants", json=grant(gov, maxTrust="high"), headers=ADMIN)
    low = (await c.post("/api/runtime/adapter/sessions", json=ask, headers=gov.member)).json()
    high = (await c.post("/api/runtime/adapter/sessions", json={**ask, "requestedTrust": "high"},
                         headers=gov.member)).json()
    assert high["reused"] is False and high["name"] == low["name"] and high["consentedTrust"] == "high"
    mine = [s for s in gov.policy_file()["sessions"] if s["name"].startswith("adapter-")]
    assert [s["name"] for s in mine] == [low["name"]]


async def test_rendered_policy_route(gov: Gov) -> None:
    c = gov.api.client
    await c.post("/api/runtime/grants", json=grant(gov), headers=ADMIN)
    r = await c.get("/api/runtime/policy", params={"namespace": gov.ns, "server": "srv"}, headers=gov.owner)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["source"] == f"configmap/{gov.ns}/srv-gateway-policy"
    assert json.loads(body["json"])["revision"] == body["revision"] == gov.policy_file()["revision"]
    assert body["server"] == {"name": "srv", "namespace": gov.ns, "team_id": gov.team["id"], "cluster": "local"}
    params = {"namespace": gov.ns, "server": "srv"}
    assert (await c.get("/api/runtime/policy", params=params, headers=gov.member)).status_code == 403
    assert (await c.get("/api/runtime/policy", params={"namespace": gov.ns}, headers=ADMIN)).status_code == 400
    r = await c.get("/api/runtime/policy", params={"namespace": gov.ns, "server": "ghost"}, headers=ADMIN)
    assert r.status_code == 404 and r.json()["message"] == "policy not found"


async def test_servers_quota_conflict_and_retire(make_api: AppFactory, gov: Gov) -> None:
    c = gov.api.client
    srv = {"name": "mine", "image": "example/mine:1", "tools": TOOLS}
    r = await c.post("/api/runtime/servers", json=srv, headers=gov.member)
    assert r.status_code == 200 and r.json()["server"]["namespace"] == gov.ns
    assert r.json()["server"]["teamID"] == gov.team["id"]
    r = await c.post("/api/runtime/servers", json=srv, headers=gov.member)
    assert r.status_code == 409
    assert (await c.post("/api/runtime/servers", json={**srv, "update": True}, headers=gov.member)).status_code == 200
    r = await c.post("/api/runtime/servers", json={**srv, "scope": "public"}, headers=gov.member)
    assert r.status_code == 403
    r = await c.post("/api/runtime/servers", json={**srv, "name": "t2", "tools": [{"name": "x"}]}, headers=gov.member)
    assert r.status_code == 400 and "tools[0].sideEffect" in r.json()["message"]
    tools = (await c.get("/api/runtime/tools", params={"namespace": gov.ns}, headers=gov.member)).json()["tools"]
    assert {(t["server"], t["name"]) for t in tools} >= {("mine", "search"), ("srv", "delete")}
    listed = (await c.get("/api/runtime/servers", headers=gov.member)).json()["servers"]
    assert {s["namespace"] for s in listed} >= {"mcp-servers", gov.ns}
    assert (await c.get("/api/runtime/servers", params={"namespace": gov.ns}, headers=gov.other)).status_code == 403
    # The member created `mine`, so it administers it (and not `srv`, which the admin created).
    assert (await c.delete(f"/api/runtime/servers/{gov.ns}/srv", headers=gov.member)).status_code == 403
    assert (await c.delete(f"/api/runtime/servers/{gov.ns}/mine", headers=gov.member)).status_code == 200
    assert (await c.delete(f"/api/runtime/servers/{gov.ns}/mine", headers=gov.member)).status_code == 404

    # Quota: one active server per user.
    limited = await make_api(active_server_limit=1, _backends={"kube": gov.kube.api})
    await limited.client.post("/api/runtime/servers", json={**srv, "name": "q1"}, headers=gov.owner)
    r = await limited.client.post("/api/runtime/servers", json={**srv, "name": "q2"}, headers=gov.owner)
    assert r.status_code == 429 and "limit" in r.json()["message"]
    cooled = await make_api(active_server_limit=0, push_cooldown_seconds=600, _backends={"kube": gov.kube.api})
    r = await cooled.client.post("/api/runtime/servers", json={**srv, "name": "q3"}, headers=gov.owner)
    assert r.status_code == 429 and "next_allowed_at" in r.json()["message"] and int(r.headers["retry-after"]) > 500


async def test_unconfigured_kubernetes_is_503(make_api: AppFactory) -> None:
    api = await make_api()
    for path in ("/api/runtime/grants", "/api/runtime/sessions", "/api/runtime/servers"):
        r = await api.client.get(path, headers=ADMIN)
        assert r.status_code == 503 and "kubernetes" in r.json()["message"], path


async def test_deployments_create_list_and_delete(gov: Gov) -> None:
    """The seed's `/api/deployments` deploy body creates an MCPServer in the caller's team namespace."""
    c, owner, other = gov.api.client, gov.owner, gov.other
    body = {"name": "dep", "image": "example/dep", "version": "2.0", "port": 9000, "replicas": 2, "namespace": gov.ns}
    r = await c.post("/api/deployments", json=body, headers=owner)
    assert r.status_code == 200, r.text
    dep = r.json()["deployment"]
    assert (dep["name"], dep["namespace"], dep["image"], dep["version"], dep["port"], dep["replicas"]) == (
        "dep", gov.ns, "example/dep", "2.0", 9000, 2)
    listed = (await c.get("/api/deployments", params={"namespace": gov.ns}, headers=owner)).json()["deployments"]
    assert "dep" in {d["name"] for d in listed}
    assert gov.kube.kube.servers.get(gov.ns, "dep")["spec"]["imageTag"] == "2.0"
    r = await c.post("/api/deployments", json={**body, "image": ""}, headers=owner)
    assert r.status_code == 400 and "image is required" in r.json()["message"], r.text
    r = await c.post("/api/deployments", json=body, headers=other)  # not in that team
    assert r.status_code == 403
    r = await c.delete(f"/api/deployments/{gov.ns}/dep", headers=other)
    assert r.status_code == 403
    r = await c.delete(f"/api/deployments/{gov.ns}/dep", headers=owner)
    assert r.status_code == 200 and r.json() == {"success": True, "namespace": gov.ns, "name": "dep"}
    r = await c.delete(f"/api/deployments/{gov.ns}/dep", headers=owner)
    assert r.status_code == 404


PROMPTS = [{"name": "triage", "description": "Triage a ticket"}, {"name": "wipe", "sideEffect": "destructive",
                                                                   "requiredTrust": "high", "riskLevel": "high"}]
RESOURCES = [{"name": "ledger", "uri": "ledger://{account}/entries", "labels": {"pii": "yes"}}]


async def test_servers_accept_declared_prompts_and_resources(gov: Gov) -> None:
    c = gov.api.client
    srv = {"name": "inv", "image": "example/inv:1", "tools": TOOLS, "prompts": PROMPTS, "mcpResources": RESOURCES,
           "gateway": {"enabled": True, "port": 8091}}
    r = await c.post("/api/runtime/servers", json=srv, headers=gov.owner)
    assert r.status_code == 200, r.text
    # The CRD's defaults are filled in (requiredTrust low, sideEffect read), empty fields dropped.
    assert r.json()["server"]["prompts"] == [
        {"name": "triage", "description": "Triage a ticket", "requiredTrust": "low", "sideEffect": "read"},
        {"name": "wipe", "requiredTrust": "high", "sideEffect": "destructive", "riskLevel": "high"},
    ]
    assert r.json()["server"]["mcpResources"] == [
        {"name": "ledger", "uri": "ledger://{account}/entries", "labels": {"pii": "yes"},
         "requiredTrust": "low", "sideEffect": "read"},
    ]
    spec = gov.kube.kube.servers.get(gov.ns, "inv")["spec"]
    assert [p["name"] for p in spec["prompts"]] == ["triage", "wipe"] and spec["mcpResources"][0]["name"] == "ledger"
    doc = gov.policy_file("inv")
    assert {p["name"]: p["side_effect"] for p in doc["prompts"]} == {"triage": "read", "wipe": "destructive"}
    assert doc["resources"][0]["uri"] == "ledger://{account}/entries"
    # A redeploy through `/api/deployments` changes the image only: governance is kept.
    before = gov.kube.kube.servers.get(gov.ns, "inv")["spec"]
    dep = {"name": "inv", "namespace": gov.ns, "image": "example/inv", "version": "2.0"}
    r = await c.post("/api/deployments", json=dep, headers=gov.owner)
    assert r.status_code == 200, r.text
    after = gov.kube.kube.servers.get(gov.ns, "inv")["spec"]
    assert (after["image"], after["imageTag"]) == ("example/inv", "2.0")
    assert {k: v for k, v in after.items() if k not in ("image", "imageTag")} == {
        k: v for k, v in before.items() if k not in ("image", "imageTag")}
    assert (await c.post("/api/deployments", json=dep, headers=gov.other)).status_code == 403
    # Replacing without them removes them (the body is the whole spec, like tools).
    r = await c.post("/api/runtime/servers", json={**srv, "update": True, "prompts": []}, headers=gov.owner)
    assert r.status_code == 200 and "prompts" not in r.json()["server"]
    assert "prompts" not in gov.kube.kube.servers.get(gov.ns, "inv")["spec"]


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"prompts": [{"description": "no name"}]}, "prompts[0].name"),
        ({"prompts": [{"name": ""}]}, "prompts[0].name"),
        ({"prompts": [{"name": " padded "}]}, "prompts[0].name"),
        ({"prompts": [{"name": "p", "requiredTrust": "ultra"}]}, "prompts[0].requiredTrust"),
        ({"prompts": [{"name": "p", "sideEffect": "launch"}]}, "prompts[0].sideEffect"),
        ({"prompts": [{"name": "p", "riskLevel": "HIGH"}]}, "prompts[0].riskLevel"),
        ({"prompts": [{"name": "p"}, {"name": "p"}]}, "prompts[1].name duplicates p"),
        ({"mcpResources": [{"name": "r", "labels": {"k": 1}}]}, "mcpResources[0].labels"),
        ({"mcpResources": [{"name": "r", "uri": "x" * 2049}]}, "mcpResources[0].uri"),
        ({"mcpResources": [{"name": "r"}, {"name": "r", "uri": "a://b"}]}, "mcpResources[1].name duplicates r"),
        ({"mcpResources": "ledger"}, "mcpResources"),
    ],
)
async def test_servers_refuse_prompts_and_resources_the_crd_refuses(
    gov: Gov, over: dict[str, Any], message: str
) -> None:
    srv = {"name": "bad", "image": "example/bad:1", **over}
    r = await gov.api.client.post("/api/runtime/servers", json=srv, headers=gov.owner)
    assert r.status_code == 400, r.text
    assert message in r.json()["message"]
    assert gov.kube.kube.servers.list(gov.ns) and all(
        s["metadata"]["name"] != "bad" for s in gov.kube.kube.servers.list(gov.ns)
    )  # nothing written


def test_openapi_publishes_prompt_and_resource_constraints() -> None:
    schemas = create_app(base_settings()).openapi()["components"]["schemas"]
    prompt, resource = schemas["PromptIn"]["properties"], schemas["ResourceIn"]["properties"]
    assert prompt["requiredTrust"]["enum"] == ["low", "medium", "high"] and prompt["requiredTrust"]["default"] == "low"
    assert prompt["sideEffect"]["enum"] == ["read", "write", "destructive"]
    assert prompt["sideEffect"]["default"] == "read"
    assert prompt["name"]["minLength"] == 1 and prompt["name"]["pattern"]
    assert resource["uri"]["maxLength"] == 2048 and schemas["ResourceIn"]["required"] == ["name"]
    server = schemas["ServerIn"]["properties"]
    assert server["prompts"]["items"]["$ref"].endswith("/PromptIn")
    assert server["mcpResources"]["items"]["$ref"].endswith("/ResourceIn")


# --- a grant's `approval` (issue 18 item 3) ---------------------------------------------------------


async def test_approval_is_normalised_stored_and_rendered(gov: Gov) -> None:
    # Repeats collapse; case and padding are not fixed up (bodies are validated exactly as published).
    c = gov.api.client
    body = grant(gov, allowedSideEffects=["read", "destructive"],
                 approval={"sideEffects": ["destructive", "destructive"], "tools": ["search", "search"]})
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
        ({"tools": ["ok", " "]}, "approval.tools[1] is required"),
        ({"sideEffects": ["Destructive"]}, "approval.sideEffects[0] must be"),
        ({"tools": ["x"], "ttlSeconds": 30}, "ttlSeconds"),
        ({"tools": ["x"], "ttlSeconds": 90000}, "ttlSeconds"),
    ],
)
async def test_bad_approvals_are_refused(gov: Gov, approval: dict[str, Any], message: str) -> None:
    r = await gov.api.client.post("/api/runtime/grants", json=grant(gov, approval=approval), headers=ADMIN)
    assert r.status_code == 400, r.text
    assert message in r.json()["message"]
    assert gov.kube.kube.grants.list(gov.ns) == []


def test_openapi_publishes_the_approval_bounds() -> None:
    schemas = create_app(base_settings()).openapi()["components"]["schemas"]
    ttl = schemas["ApprovalIn"]["properties"]["ttlSeconds"]
    assert (ttl["minimum"], ttl["maximum"], ttl["default"]) == (60, 86400, 900)
    assert schemas["GatewayAsk"]["properties"]["ttlSeconds"]["minimum"] == 60
