"""Generate every Secret the manifests reference, with fresh random values (`cryptography` for key pairs).

The one command an operator runs before (or right after) `kubectl apply -k knative/`:

    python -m mcp_sentinel.secrets_gen \\
        --postgres-dsn 'postgresql://sentinel:<password>@postgres.postgres.svc:5432/sentinel' \\
        --clickhouse-url 'http://sentinel:<password>@clickhouse.clickhouse.svc:8123' \\
      | kubectl apply -f -

The manifests carry no Secret of their own, so a workload whose Secret was never generated does
not start (CreateContainerConfigError) instead of running with a template value. Rerunning the
command rotates every key (users then sign in again; gateways pick the new ingest key up on restart).
Output is a Kubernetes `List` in JSON, which `kubectl apply -f -` reads like YAML.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
from collections.abc import Sequence
from typing import Any

from mcp_sentinel.secrets_check import Spec, problems

PLATFORM_NAMESPACE = "mcp-sentinel"
PLATFORM_SECRET = "mcp-sentinel-secrets"
INVENTORY_SIGNING_SECRET = "mcp-sentinel-inventory-signing-key"
INVENTORY_PUBLIC_KEYS = "mcp-sentinel-inventory-public-keys"
AGENT_TOKEN_SECRET = "mcp-sentinel-agent-token-keys"
# The kid knative/services/api.yaml names in AGENT_TOKEN_KEYS (rotate: add a key, move the name).
AGENT_TOKEN_KID = "k-2026-12"
DEFAULT_GATEWAYS = ("mcp-servers/server-a",)


def token(nbytes: int = 32) -> str:
    """A URL-safe random secret (`nbytes` of entropy; 32 bytes → 43 characters)."""
    return secrets.token_urlsafe(nbytes)


def credential_secret_name(server: str) -> str:
    """The Secret holding one gateway's own ingest credential (knative/sidecar/<server>.yaml)."""
    return f"{server}-ingest-credential"


def _meta(namespace: str, name: str) -> dict[str, Any]:
    return {"name": name, "namespace": namespace, "labels": {"app.kubernetes.io/part-of": "mcp-sentinel"}}


def _secret(namespace: str, name: str, data: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": _meta(namespace, name), "type": "Opaque",
            "stringData": data}  # fmt: skip


def _config_map(namespace: str, name: str, data: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(namespace, name), "data": data}


def _private_key(pem: bytes) -> Any:
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    return load_pem_private_key(pem, password=None)


def _p256_pem() -> bytes:
    # The agent-token signing key (ES256; functions/api/agent_tokens.py also takes Ed25519).
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())  # fmt: skip


def parse_gateway(spec: str) -> tuple[str, str, str]:
    """`namespace/server[:team]` -> (namespace, server, team); ValueError when malformed."""
    ref, _, team = spec.partition(":")
    ns, sep, server = ref.partition("/")
    if not sep or not ns.strip() or not server.strip():
        raise ValueError(f"--gateway takes namespace/server[:team], got {spec!r}")
    return ns.strip(), server.strip(), team.strip()


def generate(
    postgres_dsn: str, clickhouse_url: str, gateways: Sequence[str] = DEFAULT_GATEWAYS
) -> dict[str, Any]:
    """The Secrets (and the inventory public-key ConfigMaps) as one Kubernetes List.

    ValueError when a given URL carries a placeholder or a gateway is malformed. Each gateway gets its
    own ingest credential bound to its namespace, server and team (mcp_sentinel.gateway_credentials);
    the namespace's team label decides the team, so pass the one it carries.
    """
    from mcp_sentinel import inventory_token
    from mcp_sentinel.gateway_credentials import GatewayBinding, issue

    found = problems(
        {"POSTGRES_DSN": postgres_dsn, "CLICKHOUSE_URL": clickhouse_url},
        (Spec("POSTGRES_DSN", "url"), Spec("CLICKHOUSE_URL", "url")),
    )
    if found:
        raise ValueError("; ".join(found))
    if not postgres_dsn.strip() or not clickhouse_url.strip():
        raise ValueError("--postgres-dsn and --clickhouse-url are required")
    bindings = [parse_gateway(g) for g in gateways]
    gateway_secret = token(48)
    inventory_private = inventory_token.generate_pem()
    inventory_public = inventory_token.public_pem(_private_key(inventory_private))
    items = [
        _secret(
            PLATFORM_NAMESPACE,
            PLATFORM_SECRET,
            {
                "API_KEYS": token(),
                "ADMIN_API_KEYS": token(),
                # Static ingest keys must be bound to a server (docs/conventions.md); every gateway
                # writes with its own credential instead, signed with INGEST_GATEWAY_SECRET.
                "INGEST_API_KEYS": "",
                "INGEST_GATEWAY_SECRET": gateway_secret,
                "JWT_SECRET": token(48),
                # Rotation ring ("kid=secret,..."); empty means JWT_SECRET alone signs.
                "JWT_KEYS": "",
                "UI_SESSION_SECRET": token(48),
                "CLICKHOUSE_URL": clickhouse_url.strip(),
                "POSTGRES_DSN": postgres_dsn.strip(),
            },
        ),
        _secret(PLATFORM_NAMESPACE, INVENTORY_SIGNING_SECRET, {"signing.pem": inventory_private.decode()}),
        _secret(PLATFORM_NAMESPACE, AGENT_TOKEN_SECRET,
                {f"{AGENT_TOKEN_KID}.pem": _p256_pem().decode()}),  # fmt: skip
    ]
    items.extend(_config_map(ns, INVENTORY_PUBLIC_KEYS, {"public.pem": inventory_public.decode()})
                 for ns in sorted({ns for ns, _s, _t in bindings}))  # fmt: skip
    for ns, server, team in bindings:
        credential = issue(gateway_secret, GatewayBinding(namespace=ns, server=server, team=team))
        items.append(_secret(ns, credential_secret_name(server), {"ANALYTICS_API_KEY": credential}))
    return {"apiVersion": "v1", "kind": "List", "items": items}


def main(argv: Sequence[str] | None = None) -> int:
    """Print the Secrets (exit 2 with a message on bad arguments)."""
    parser = argparse.ArgumentParser(
        prog="python -m mcp_sentinel.secrets_gen",
        description="Print every mcp-sentinel Secret with fresh random keys (pipe into `kubectl apply -f -`).",
    )
    parser.add_argument("--postgres-dsn", required=True, help="the identity store's DSN, with its password")
    parser.add_argument("--clickhouse-url", required=True, help="ClickHouse HTTP URL, with user and password")
    parser.add_argument(
        "--gateway",
        action="append",
        default=None,
        help="namespace/server[:team] of an MCP server with a gateway: it gets its own ingest credential "
        "(repeatable; default mcp-servers/server-a)",
    )
    args = parser.parse_args(argv)
    try:
        doc = generate(args.postgres_dsn, args.clickhouse_url, tuple(args.gateway or DEFAULT_GATEWAYS))
    except ValueError as exc:
        print(f"secrets_gen: {exc}", file=sys.stderr)  # noqa: T201 - CLI error
        return 2
    json.dump(doc, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
