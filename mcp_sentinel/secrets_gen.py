"""Generate every Secret the manifests reference, with fresh random values (stdlib only).

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
INGEST_KEY_SECRET = "mcp-sentinel-ingest-key"
INVENTORY_SECRET = "mcp-sentinel-gateway-inventory"
DEFAULT_GATEWAY_NAMESPACES = ("mcp-servers",)


def token(nbytes: int = 32) -> str:
    """A URL-safe random secret (`nbytes` of entropy; 32 bytes → 43 characters)."""
    return secrets.token_urlsafe(nbytes)


def _secret(namespace: str, name: str, data: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app.kubernetes.io/part-of": "mcp-sentinel"}},
        "type": "Opaque",
        "stringData": data,
    }


def generate(
    postgres_dsn: str, clickhouse_url: str, gateway_namespaces: Sequence[str] = DEFAULT_GATEWAY_NAMESPACES
) -> dict[str, Any]:
    """The Secrets as one Kubernetes List; ValueError when a given URL carries a placeholder."""
    found = problems(
        {"POSTGRES_DSN": postgres_dsn, "CLICKHOUSE_URL": clickhouse_url},
        (Spec("POSTGRES_DSN", "url"), Spec("CLICKHOUSE_URL", "url")),
    )
    if found:
        raise ValueError("; ".join(found))
    if not postgres_dsn.strip() or not clickhouse_url.strip():
        raise ValueError("--postgres-dsn and --clickhouse-url are required")
    ingest_key, inventory = token(), token()
    items = [
        _secret(
            PLATFORM_NAMESPACE,
            PLATFORM_SECRET,
            {
                "API_KEYS": token(),
                "ADMIN_API_KEYS": token(),
                "INGEST_API_KEYS": ingest_key,
                "JWT_SECRET": token(48),
                # Rotation ring ("kid=secret,..."); empty means JWT_SECRET alone signs.
                "JWT_KEYS": "",
                "MCP_INVENTORY_TOKEN": inventory,
                "UI_SESSION_SECRET": token(48),
                "CLICKHOUSE_URL": clickhouse_url.strip(),
                "POSTGRES_DSN": postgres_dsn.strip(),
            },
        )
    ]
    for ns in gateway_namespaces:
        items.append(_secret(ns, INGEST_KEY_SECRET, {"ANALYTICS_API_KEY": ingest_key}))
        items.append(_secret(ns, INVENTORY_SECRET, {"INVENTORY_TOKEN": inventory}))
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
        "--gateway-namespace",
        action="append",
        default=None,
        help="a namespace whose MCP servers carry a gateway (repeatable; default mcp-servers)",
    )
    args = parser.parse_args(argv)
    try:
        namespaces = tuple(args.gateway_namespace or DEFAULT_GATEWAY_NAMESPACES)
        doc = generate(args.postgres_dsn, args.clickhouse_url, namespaces)
    except ValueError as exc:
        print(f"secrets_gen: {exc}", file=sys.stderr)  # noqa: T201 - CLI error
        return 2
    json.dump(doc, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
