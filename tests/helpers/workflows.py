"""Helpers of the workflows tests (constants and builders); their fixtures: tests/workflows/conftest.py."""

from __future__ import annotations

import os
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from mcp_sentinel.kube.objects import Obj
from workflows.provisioning.activities import ApplyObject, ProvisioningActivities


def mcp_server(namespace: str, name: str, tools: list[str] | None = None) -> Obj:
    """An MCPServer with the gateway on, header auth, allow-list policy and required sessions."""
    return {
        "apiVersion": "mcpruntime.org/v1alpha1",
        "kind": "MCPServer",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "image": "example/mcp:1",
            "gateway": {"enabled": True},
            "auth": {"mode": "header"},
            "policy": {"mode": "allow-list", "defaultDecision": "deny"},
            "session": {"required": True},
            "tools": [{"name": t, "sideEffect": "read", "requiredTrust": "low"} for t in tools or ["echo"]],
        },
    }


def grant(namespace: str, name: str, server: str, human: str) -> Obj:
    """A grant letting `human` call read tools on `server`."""
    return {
        "apiVersion": "mcpruntime.org/v1alpha1",
        "kind": "MCPAccessGrant",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "serverRef": {"name": server},
            "subject": {"humanID": human},
            "maxTrust": "low",
            "allowedSideEffects": ["read"],
        },
    }


def session(namespace: str, name: str, server: str, human: str, expires_at: str, **spec: Any) -> Obj:
    """An MCPAgentSession for `human` on `server`."""
    return {
        "apiVersion": "mcpruntime.org/v1alpha1",
        "kind": "MCPAgentSession",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "serverRef": {"name": server},
            "subject": {"humanID": human},
            "consentedTrust": "low",
            "expiresAt": expires_at,
            **spec,
        },
    }


def worker_env(**extra: str) -> dict[str, str]:
    """The environment of a worker subprocess (the repo importable, unbuffered logs)."""
    env = dict(os.environ)
    env.update(extra)
    env["PYTHONUNBUFFERED"] = "1"
    return env


class FailingAt(ProvisioningActivities):
    """Real activities, except that creating objects of `kind` fails like a rejected manifest."""

    fail_kind = "RoleBinding"

    @activity.defn(name="provisioning.apply_object")
    def apply_object(self, req: ApplyObject) -> bool:
        if req.manifest["kind"] == self.fail_kind:
            raise ApplicationError("admission webhook denied the object", type="Invalid", non_retryable=True)
        return super().apply_object(req)
