"""The upstream docs' payments server and its grant as Kubernetes objects (the renderer tests' worked example)."""

from __future__ import annotations

TEAM = "7d0a0b8f-7c25-4761-a632-3cf0108e31d6"

SERVER = {
    "metadata": {"name": "payments", "namespace": "mcp-servers"},
    "spec": {
        "image": "example/payments",
        "teamID": f" {TEAM} ",
        "gateway": {"enabled": True},
        "auth": {"mode": "header"},  # upstream's example predates platform tokens (the default now)
        "session": {"required": True},
        "tools": [
            {"name": "list_invoices", "description": "List invoices for a customer account.",
             "sideEffect": "read", "riskLevel": "low"},
            {"name": "refund_invoice", "description": "Issue a refund for an invoice.",
             "requiredTrust": "high", "sideEffect": "destructive", "riskLevel": "high"},
        ],
    },
}

GRANT = {
    "metadata": {"name": "payments-ops-agent", "namespace": "mcp-servers"},
    "spec": {
        "serverRef": {"name": "payments"},
        "subject": {"humanID": "user-123", "agentID": "ops-agent"},
        "maxTrust": "high",
        "allowedSideEffects": ["read", "destructive"],
        "policyVersion": "v1",
        "toolRules": [{"name": "list_invoices", "decision": "allow"},
                      {"name": "refund_invoice", "decision": "allow", "requiredTrust": "high"}],
    },
}
