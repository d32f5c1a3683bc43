"""The MCPAccessGrant CRD admits `spec.quotas` in the shared shape and refuses what the document refuses."""

from __future__ import annotations

from typing import Any

import pytest

from mcp_sentinel.kube import errors


def _grant(name: str, quotas: list[dict[str, Any]]) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"serverRef": {"name": "srv"}, "subject": {"humanID": "h"},
                                                 "allowedSideEffects": ["write"], "quotas": quotas}}


def test_quotas_are_kept(kube_cluster: Any, kube_namespace: str) -> None:
    quotas = [{"limit": 100, "windowSeconds": 3600, "per": "session", "sideEffect": "write"},
              {"limit": 5, "windowSeconds": 60, "per": "human", "tool": "search"}]
    made = kube_cluster.kube.grants.create(kube_namespace, _grant("ok", quotas))
    assert made["spec"]["quotas"] == quotas


@pytest.mark.parametrize(
    ("quota", "field"),
    [
        ({"limit": 0, "windowSeconds": 60, "per": "session"}, "spec.quotas[0].limit"),
        ({"limit": 1, "windowSeconds": 2592001, "per": "session"}, "spec.quotas[0].windowSeconds"),
        ({"limit": 1, "windowSeconds": 60, "per": "team"}, "spec.quotas[0].per"),
        ({"limit": 1, "windowSeconds": 60, "per": "human", "sideEffect": "launch"}, "spec.quotas[0].sideEffect"),
        ({"windowSeconds": 60, "per": "human"}, "spec.quotas[0].limit"),
    ],
)
def test_bad_quotas_are_invalid(kube_cluster: Any, kube_namespace: str, quota: dict[str, Any], field: str) -> None:
    with pytest.raises(errors.Invalid) as bad:
        kube_cluster.kube.grants.create(kube_namespace, _grant("bad", [quota]))
    assert field in {c["field"] for c in bad.value.causes}
