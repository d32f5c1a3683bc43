"""The CRDs accept the seed's examples and reject invalid objects with field causes (via the local API server)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s

from mcp_sentinel.kube.client import crd_paths

GROUP, VERSION = "mcpruntime.org", "v1alpha1"
TEAM = "7d0a0b8f-7c25-4761-a632-3cf0108e31d6"


def payments_server() -> dict[str, Any]:
    """The upstream docs' payments server (§2.4 worked example)."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "MCPServer",
        "metadata": {"name": "payments"},
        "spec": {
            "teamID": TEAM,
            "image": "registry.example.com/payments-mcp",
            "imageTag": "1.4.2",
            "tools": [
                {
                    "name": "list_invoices",
                    "description": "List invoices for a customer account.",
                    "requiredTrust": "low",
                    "sideEffect": "read",
                    "riskLevel": "low",
                },
                {
                    "name": "refund_invoice",
                    "description": "Issue a refund for an invoice.",
                    "requiredTrust": "high",
                    "sideEffect": "destructive",
                    "riskLevel": "high",
                },
            ],
            "auth": {"mode": "header"},
            "policy": {"mode": "allow-list", "defaultDecision": "deny"},
            "session": {"required": True},
            "gateway": {"enabled": True},
            "rollout": {"strategy": "RollingUpdate", "maxUnavailable": "25%", "maxSurge": 1},
        },
    }


def payments_grant() -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "MCPAccessGrant",
        "metadata": {"name": "payments-ops-agent"},
        "spec": {
            "serverRef": {"name": "payments"},
            "subject": {"humanID": "user-123", "agentID": "ops-agent"},
            "maxTrust": "high",
            "allowedSideEffects": ["read", "destructive"],
            "policyVersion": "v1",
            "toolRules": [
                {"name": "list_invoices", "decision": "allow", "requiredTrust": "low"},
                {"name": "refund_invoice", "decision": "allow", "requiredTrust": "high"},
            ],
        },
    }


def payments_session() -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "MCPAgentSession",
        "metadata": {"name": "sess-8f1b9d"},
        "spec": {
            "serverRef": {"name": "payments"},
            "subject": {"humanID": "user-123", "agentID": "ops-agent"},
            "consentedTrust": "medium",
            "expiresAt": "2026-03-26T12:00:00Z",
            "upstreamTokenSecretRef": {"name": "payments-upstream-token", "key": "access-token"},
        },
    }


PLURALS = {"MCPServer": "mcpservers", "MCPAccessGrant": "mcpaccessgrants", "MCPAgentSession": "mcpagentsessions"}


def create(api: k8s.ApiClient, ns: str, body: dict[str, Any]) -> dict[str, Any]:
    co = k8s.CustomObjectsApi(api)
    return dict(co.create_namespaced_custom_object(GROUP, VERSION, ns, PLURALS[body["kind"]], body))


def rejected(api: k8s.ApiClient, ns: str, body: dict[str, Any]) -> list[dict[str, str]]:
    with pytest.raises(k8s.ApiException) as info:
        create(api, ns, body)
    assert info.value.status == 422
    status = json.loads(info.value.body)
    assert status["reason"] == "Invalid" and status["details"]["kind"] == body["kind"]
    return list(status["details"]["causes"])


def test_crd_files_declare_status_subresource_and_printer_columns() -> None:
    docs = {d["spec"]["names"]["kind"]: d for p in crd_paths() for d in yaml.safe_load_all(p.read_text())}
    assert set(docs) == {"MCPServer", "MCPAccessGrant", "MCPAgentSession"}
    columns = {
        "MCPServer": ["Team", "Phase", "Policy", "Gateway", "Ready", "Age"],
        "MCPAccessGrant": ["Server", "Human", "Agent", "Team", "Trust", "Disabled", "Age"],
        "MCPAgentSession": ["Server", "Human", "Agent", "Team", "Trust", "Revoked", "Expires", "Age"],
    }
    for kind, doc in docs.items():
        assert doc["spec"]["group"] == GROUP and doc["spec"]["scope"] == "Namespaced"
        (version,) = doc["spec"]["versions"]
        assert version["name"] == VERSION and version["subresources"] == {"status": {}}
        assert [c["name"] for c in version["additionalPrinterColumns"]] == columns[kind]


def test_seed_examples_are_accepted_and_defaulted(kube_cluster, kube_namespace) -> None:
    server = create(kube_cluster.api, kube_namespace, payments_server())
    spec = server["spec"]
    assert spec["port"] == 8088 and spec["servicePort"] == 80 and spec["replicas"] == 1
    assert spec["auth"]["humanIDHeader"] == "X-MCP-Human-ID" and spec["auth"]["tokenHeader"] == "Authorization"
    assert spec["policy"] == {
        "mode": "allow-list",
        "defaultDecision": "deny",
        "enforceOn": "call_tool",
        "policyVersion": "v1",
    }
    assert spec["session"]["maxLifetime"] == "24h" and spec["gateway"]["port"] == 8091
    assert "analytics" not in spec  # defaults only fill fields of objects that exist
    grant = create(kube_cluster.api, kube_namespace, payments_grant())
    assert grant["spec"]["disabled"] is False and grant["spec"]["maxTrust"] == "high"
    session = create(kube_cluster.api, kube_namespace, payments_session())
    assert session["spec"]["revoked"] is False and session["spec"]["consentedTrust"] == "medium"


def test_trust_defaults_to_low_in_the_stored_object(kube_cluster, kube_namespace) -> None:
    grant = payments_grant()
    del grant["spec"]["maxTrust"]
    session = payments_session()
    del session["spec"]["consentedTrust"]
    assert create(kube_cluster.api, kube_namespace, grant)["spec"]["maxTrust"] == "low"
    assert create(kube_cluster.api, kube_namespace, session)["spec"]["consentedTrust"] == "low"


def test_unknown_fields_are_pruned(kube_cluster, kube_namespace) -> None:
    body = payments_server()
    body["spec"]["notAField"] = 1
    body["spec"]["tools"][0]["extra"] = "x"
    server = create(kube_cluster.api, kube_namespace, body)
    assert "notAField" not in server["spec"] and "extra" not in server["spec"]["tools"][0]


def _with(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    node = body
    keys = path.split(".")
    for k in keys[:-1]:
        node = node[int(k)] if k.isdigit() else node[k]
    last = keys[-1]
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value
    return body


_DELETE = object()


@pytest.mark.parametrize(
    ("factory", "path", "value", "field", "reason"),
    [
        # Neither an image nor a remote upstream (gateway.upstreamURL): nothing to run.
        (payments_server, "spec.image", _DELETE, "spec", "FieldValueInvalid"),
        (payments_server, "spec.tools.0.sideEffect", "delete", "spec.tools[0].sideEffect", "FieldValueNotSupported"),
        (payments_server, "spec.tools.1.name", "list_invoices", "spec.tools[1]", "FieldValueDuplicate"),
        (payments_server, "spec.tools.0.sideEffect", _DELETE, "spec.tools[0].sideEffect", "FieldValueRequired"),
        (payments_server, "spec.teamID", "team with spaces", "spec.teamID", "FieldValueInvalid"),
        (payments_server, "spec.auth.mode", "basic", "spec.auth.mode", "FieldValueNotSupported"),
        (payments_server, "spec.policy.mode", "audit", "spec.policy.mode", "FieldValueNotSupported"),
        (payments_server, "spec.port", "8080", "spec.port", "FieldValueTypeInvalid"),
        (payments_server, "spec.rollout.maxSurge", "lots", "spec.rollout.maxSurge", "FieldValueInvalid"),
        (payments_grant, "spec.serverRef", _DELETE, "spec.serverRef", "FieldValueRequired"),
        (payments_grant, "spec.allowedSideEffects", _DELETE, "spec.allowedSideEffects", "FieldValueRequired"),
        (payments_grant, "spec.allowedSideEffects", [], "spec.allowedSideEffects", "FieldValueInvalid"),
        (
            payments_grant,
            "spec.allowedSideEffects",
            ["read", "read"],
            "spec.allowedSideEffects[1]",
            "FieldValueDuplicate",
        ),
        (payments_grant, "spec.maxTrust", "root", "spec.maxTrust", "FieldValueNotSupported"),
        (payments_grant, "spec.toolRules.0.decision", "audit", "spec.toolRules[0].decision", "FieldValueNotSupported"),
        (payments_session, "spec.subject", {}, "spec.subject", "FieldValueInvalid"),
        (payments_session, "spec.subject", {"humanID": ""}, "spec.subject", "FieldValueInvalid"),
        (payments_session, "spec.expiresAt", "next tuesday", "spec.expiresAt", "FieldValueInvalid"),
        (
            payments_session,
            "spec.upstreamTokenSecretRef.key",
            _DELETE,
            "spec.upstreamTokenSecretRef.key",
            "FieldValueRequired",
        ),
        (payments_session, "spec.consentedTrust", "High", "spec.consentedTrust", "FieldValueNotSupported"),
    ],
)
def test_invalid_objects_are_rejected_with_field_causes(
    kube_cluster, kube_namespace, factory: Any, path: str, value: Any, field: str, reason: str
) -> None:
    causes = rejected(kube_cluster.api, kube_namespace, _with(factory(), path, value))
    assert {"field": field, "reason": reason} in [{"field": c["field"], "reason": c["reason"]} for c in causes]
