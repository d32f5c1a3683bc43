"""The local stack's demo objects: the seed isolation scenario as real custom resources.

`server-a` and `server-b` front the sample "workspace assistant"; alice (agent
`workspace-agent`) holds a grant and a live session on server-a, bob the same on server-b.
Sessions are required, so a session for one server is useless on the other. This mirrors
`examples/policies/generate.py`, which renders the same scenario as policy files.
"""

from __future__ import annotations

from typing import Any

from localstack.config import StackConfig
from mcp_sentinel.kube.errors import AlreadyExists
from mcp_sentinel.kube.resources import (
    API_VERSION,
    MCP_ACCESS_GRANT,
    MCP_AGENT_SESSION,
    MCP_SERVER,
    CustomKind,
    CustomResources,
    SentinelKube,
)

AGENT = "workspace-agent"
TOOLS: tuple[dict[str, str], ...] = (
    {"name": "list_documents", "description": "List document titles.", "requiredTrust": "low", "sideEffect": "read"},
    {"name": "read_document", "description": "Read one document.", "requiredTrust": "low", "sideEffect": "read"},
    {"name": "search", "description": "Search documents.", "requiredTrust": "low", "sideEffect": "read"},
    {
        "name": "summarize_workspace",
        "description": "Summarize with progress.",
        "requiredTrust": "low",
        "sideEffect": "read",
    },
    {"name": "create_document", "description": "Create a document.", "requiredTrust": "medium", "sideEffect": "write"},
    {"name": "update_document", "description": "Replace a document.", "requiredTrust": "medium", "sideEffect": "write"},
    {
        "name": "delete_document",
        "description": "Delete a document.",
        "requiredTrust": "high",
        "sideEffect": "destructive",
    },
    {
        "name": "archive_document",
        "description": "Archive after confirming.",
        "requiredTrust": "high",
        "sideEffect": "destructive",
    },
)
GRANTED = ("list_documents", "read_document", "search", "summarize_workspace", "create_document", "update_document")
# (server, human, session id, sidecar port name)
SCENARIO = (("server-a", "alice", "sess-alice-a", "sidecar_a"), ("server-b", "bob", "sess-bob-b", "sidecar_b"))
SEED_LABELS = {"app.kubernetes.io/part-of": "mcp-sentinel", "mcp-sentinel.io/seed": "demo"}


def _meta(name: str, namespace: str, **labels: str) -> dict[str, Any]:
    return {"name": name, "namespace": namespace, "labels": {**SEED_LABELS, **labels}}


def demo_objects(cfg: StackConfig) -> list[tuple[CustomKind, dict[str, Any]]]:
    """Every seeded custom resource, servers first (grants and sessions reference them)."""
    ns = cfg.namespace
    out: list[tuple[CustomKind, dict[str, Any]]] = []
    for server, _human, _session, sidecar_port in SCENARIO:
        out.append(
            (
                MCP_SERVER,
                {
                    "apiVersion": API_VERSION,
                    "kind": MCP_SERVER.kind,
                    "metadata": _meta(server, ns, app=server),
                    "spec": {
                        "description": f'Sample "workspace assistant" MCP server ({server})',
                        "image": "mcp-sentinel/workspace-assistant:local",
                        "port": cfg.ports.sample_mcp,
                        "tools": [dict(t) for t in TOOLS],
                        "auth": {"mode": "header"},
                        "policy": {"mode": "allow-list", "defaultDecision": "deny", "policyVersion": "v1"},
                        "session": {"required": True},
                        "gateway": {
                            "enabled": True,
                            "port": getattr(cfg.ports, sidecar_port),
                            "inventoryPort": getattr(cfg.ports, sidecar_port + "_inventory"),
                            "upstreamURL": cfg.url("sample_mcp"),
                        },
                        "analytics": {"source": f"{server}-gateway", "eventType": "mcp.request"},
                    },
                },
            )
        )
    for server, human, session, _port in SCENARIO:
        out.append(
            (
                MCP_ACCESS_GRANT,
                {
                    "apiVersion": API_VERSION,
                    "kind": MCP_ACCESS_GRANT.kind,
                    "metadata": _meta(f"{human}-{server}", ns),
                    "spec": {
                        "serverRef": {"name": server},
                        "subject": {"humanID": human, "agentID": AGENT},
                        "maxTrust": "medium",
                        "allowedSideEffects": ["read", "write"],
                        "policyVersion": "v1",
                        "toolRules": [{"name": t, "decision": "allow", "requiredTrust": "low"} for t in GRANTED],
                    },
                },
            )
        )
        out.append(
            (
                MCP_AGENT_SESSION,
                {
                    "apiVersion": API_VERSION,
                    "kind": MCP_AGENT_SESSION.kind,
                    "metadata": _meta(session, ns),
                    "spec": {
                        "serverRef": {"name": server},
                        "subject": {"humanID": human, "agentID": AGENT},
                        "consentedTrust": "medium",
                        "expiresAt": "2099-01-01T00:00:00Z",
                    },
                },
            )
        )
    return out


def seed_demo(kube: SentinelKube, cfg: StackConfig) -> list[str]:
    """Create the namespace and any missing demo object; existing ones are left as users left them.

    Returns `<kind>/<name>` of the objects created by this call (empty when all existed).
    """
    kube.ensure_namespace(
        cfg.namespace, {"app.kubernetes.io/part-of": "mcp-sentinel", "mcp-sentinel.io/mcp-servers": "true"}
    )
    clients: dict[str, CustomResources] = {
        MCP_SERVER.kind: kube.servers,
        MCP_ACCESS_GRANT.kind: kube.grants,
        MCP_AGENT_SESSION.kind: kube.sessions,
    }
    created: list[str] = []
    for kind, body in demo_objects(cfg):
        try:
            clients[kind.kind].create(cfg.namespace, body)
        except AlreadyExists:
            continue
        created.append(f"{kind.kind}/{body['metadata']['name']}")
    return created
