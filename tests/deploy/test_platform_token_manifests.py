"""The shipped manifests wire platform agent tokens end to end: keys only in the API, one issuer."""

from __future__ import annotations

from typing import Any

from mcp_sentinel.secrets_gen import generate
from tests.helpers.manifests import documents

# The kustomization ships no Secret: the operator generates them (mcp_sentinel/secrets_gen.py).
GENERATED = generate("postgresql://sentinel:pw@pg:5432/sentinel", "http://sentinel:pw@ch:8123")["items"]


def _env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: str(e.get("value", "")) for e in container.get("env", []) if "name" in e}


def _find(kind: str, name: str) -> dict[str, Any]:
    for _path, doc in documents():
        if doc.get("kind") == kind and doc.get("metadata", {}).get("name") == name:
            return doc
    raise AssertionError(f"{kind}/{name} not in the kustomization")


def test_api_signs_with_keys_mounted_from_their_own_secret_and_sidecars_trust_the_same_issuer() -> None:
    api = _find("Service", "mcp-sentinel-api")["spec"]["template"]["spec"]
    container = api["containers"][0]
    env = _env(container)
    mount = next(m for m in container["volumeMounts"] if m["name"] == "agent-token-keys")
    assert mount["readOnly"] is True
    volume = next(v for v in api["volumes"] if v["name"] == "agent-token-keys")
    secret = next(s for s in GENERATED if s["metadata"]["name"] == volume["secret"]["secretName"])
    for item in env["AGENT_TOKEN_KEYS"].split(","):
        kid, _, path = item.partition("=")
        assert path.startswith(mount["mountPath"] + "/") and path.rsplit("/", 1)[1] in secret["stringData"], item
    assert env["AGENT_TOKEN_ISSUER"].startswith("https://") and env["MCP_PUBLIC_BASE_URL"].startswith("https://")
    # Private keys reach no other workload.
    for _path, doc in documents():
        text = str(doc)
        if doc.get("metadata", {}).get("name") != "mcp-sentinel-api":
            assert "mcp-sentinel-agent-token-keys" not in text, doc.get("metadata")
    gateway = _find("Deployment", "server-a")["spec"]["template"]["spec"]
    sc = _env(next(c for c in gateway["containers"] if c["name"] == "mcp-gateway"))
    assert sc["PLATFORM_TOKEN_ISSUER"] == env["AGENT_TOKEN_ISSUER"]
    assert sc["PLATFORM_JWKS_URL"].endswith("/api/.well-known/jwks.json")
