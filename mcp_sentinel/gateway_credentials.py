"""Per-gateway ingest credentials: each gateway's key names the one server it may write audit rows for.

A credential is `sgw1.<claims>.<mac>`: `claims` is base64url of compact JSON
`{"ns": namespace, "server": name, "team": team}` and `mac` is base64url HMAC-SHA256 over
`sgw1.<claims>` with the platform's gateway secret (`INGEST_GATEWAY_SECRET`). Ingest holds only
that secret, so a new gateway needs no ingest reconfiguration, and a gateway's credential is
useless for any other server: ingest refuses events whose `server`/`namespace` differ from the
claims and stamps `team_id` from them.

The team is the platform's statement, never the gateway's: whoever issues a credential reads it
from the namespace's `mcp-sentinel.io/team-id` label (set by team provisioning,
`workflows/provisioning/manifests.py`), not from the MCPServer's free-form `spec.teamID`.

Stdlib only: the local stack and the CLI issue credentials without loading ingest.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

PREFIX = "sgw1"
TEAM_LABEL = "mcp-sentinel.io/team-id"
MIN_SECRET_BYTES = 32
# DNS-1123 subdomain (MCPServer names) and label (namespaces); teams are slugs or UUIDs.
_NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$")
_TEAM_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
MAX_CREDENTIAL_LENGTH = 2048


class CredentialError(ValueError):
    """A credential cannot be issued (bad name, short secret)."""


@dataclass(frozen=True)
class GatewayBinding:
    """What a credential lets its holder write: events of one server in one namespace, for one team.

    `team` is the platform's namespace → team mapping at issue time (`""`: the namespace has no team).
    """

    namespace: str
    server: str
    team: str = ""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: str, signed: str) -> bytes:
    return hmac.new(secret.encode(), signed.encode("ascii"), hashlib.sha256).digest()


def check_binding(binding: GatewayBinding) -> None:
    """Raise CredentialError unless the names are Kubernetes-shaped (no delimiters to confuse)."""
    if not _NAME_RE.fullmatch(binding.namespace):
        raise CredentialError(f"invalid namespace {binding.namespace!r}")
    if not _NAME_RE.fullmatch(binding.server):
        raise CredentialError(f"invalid server name {binding.server!r}")
    if binding.team and not _TEAM_RE.fullmatch(binding.team):
        raise CredentialError(f"invalid team {binding.team!r}")


def check_secret(secret: str) -> None:
    """The gateway secret signs every credential: refuse one an attacker could guess."""
    if len(secret.encode()) < MIN_SECRET_BYTES:
        raise CredentialError(f"gateway secret must be at least {MIN_SECRET_BYTES} bytes")


def issue(secret: str, binding: GatewayBinding) -> str:
    """The credential for `binding`, signed with `secret` (deterministic: re-issuing gives the same key)."""
    check_secret(secret)
    check_binding(binding)
    claims = {"ns": binding.namespace, "server": binding.server, "team": binding.team}
    signed = f"{PREFIX}.{_b64(json.dumps(claims, separators=(',', ':'), sort_keys=True).encode())}"
    return f"{signed}.{_b64(_mac(secret, signed))}"


def looks_like_credential(presented: str) -> bool:
    """Cheap shape test so other key kinds are not parsed as credentials."""
    return presented.startswith(PREFIX + ".")


def verify(secrets: Sequence[str], presented: str) -> GatewayBinding | None:
    """The binding a valid credential carries, or None (bad shape, bad MAC, or unusable claims).

    Every secret in `secrets` is tried (rotation: issue with the new one, keep the old one until
    every gateway has its new key); all are compared without stopping early.
    """
    if len(presented) > MAX_CREDENTIAL_LENGTH or not secrets:
        return None
    parts = presented.split(".")
    if len(parts) != 3 or parts[0] != PREFIX:
        return None
    signed = f"{parts[0]}.{parts[1]}"
    try:
        mac = _unb64(parts[2])
        raw = _unb64(parts[1])
    except (binascii.Error, ValueError):
        return None
    ok = False
    for secret in secrets:
        ok |= hmac.compare_digest(mac, _mac(secret, signed))
    if not ok:
        return None
    try:
        claims: Any = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        return None
    return binding_from_claims(claims, namespace_key="ns", server_key="server", team_key="team")


def binding_from_claims(
    claims: Any, *, namespace_key: str = "namespace", server_key: str = "server", team_key: str = "team_id"
) -> GatewayBinding | None:
    """A binding from a claims mapping (credential or JWT), or None when a name is missing or malformed."""
    if not isinstance(claims, Mapping):
        return None
    ns, server, team = claims.get(namespace_key), claims.get(server_key), claims.get(team_key, "")
    if not isinstance(ns, str) or not isinstance(server, str) or not isinstance(team, str):
        return None
    binding = GatewayBinding(ns, server, team)
    try:
        check_binding(binding)
    except CredentialError:
        return None
    return binding


def team_of_namespace(namespace_obj: Mapping[str, Any]) -> str:
    """The platform's team of a Kubernetes Namespace object (its team label; `""` when unlabelled)."""
    meta = namespace_obj.get("metadata")
    labels = meta.get("labels") if isinstance(meta, Mapping) else None
    team = labels.get(TEAM_LABEL, "") if isinstance(labels, Mapping) else ""
    return team if isinstance(team, str) else ""


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m mcp_sentinel.gateway_credentials --namespace NS --server NAME --team TEAM`: print a credential.

    The secret is read from `INGEST_GATEWAY_SECRET` (never a flag: it would land in shell history).
    """
    import argparse
    import os
    import sys

    parser = argparse.ArgumentParser(description="Issue one gateway's ingest credential.")
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--server", required=True)
    parser.add_argument("--team", default="", help="the namespace's mcp-sentinel.io/team-id label")
    args = parser.parse_args(argv)
    secret = os.environ.get("INGEST_GATEWAY_SECRET", "").split(",")[0].strip()
    try:
        sys.stdout.write(issue(secret, GatewayBinding(args.namespace, args.server, args.team)) + "\n")
    except CredentialError as exc:
        sys.stderr.write(f"error: {exc} (INGEST_GATEWAY_SECRET from the environment)\n")
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
