"""Platform agent tokens: the signing keys, the published JWKS and the token itself.

A platform token says "this human's agent may act in this agent session on this one server until
`exp`". It is an ES256 (P-256) or EdDSA (Ed25519) JWT: asymmetric, so a gateway verifies it
offline from the public JWKS and holds nothing that could mint one.

Keys (`AGENT_TOKEN_KEYS`): `kid=/path/to/private.pem` pairs, comma-separated, from a mounted
Secret. Every key is published in the JWKS; the *last* one signs. Rotation without a refused
token: (1) add the new key *before* the current signer (published, not signing yet); (2) once
gateways have refreshed (JWKS_TTL, 5 min), move it last (it signs); (3) drop the old key after
the longest token lifetime (`MAX_TTL`). Skipping (1) still works: a gateway that sees an unknown
`kid` refetches the JWKS (rate-limited), so only the first calls in that window may be refused.
"""

from __future__ import annotations

# cryptography and PyJWT are imported where used: the API's cold start does not pay for them.
import base64
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mcp_sentinel.kube.server_render import public_path  # one definition of the public route

DEFAULT_TTL = 600
MAX_TTL = 3600  # the gateways refuse longer lifetimes (sidecar/platform_token.py MAX_LIFETIME)
JWKS_PATH = "/.well-known/jwks.json"


class AgentKeyError(ValueError):
    """The configured keys are unusable; the API refuses to start."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass(frozen=True)
class SigningKey:
    """One private key with its `kid` and JWS algorithm."""

    kid: str
    alg: str
    private: Any

    def public_jwk(self) -> dict[str, str]:
        """The public half as a JWK (never any private member)."""
        from cryptography.hazmat.primitives import serialization

        pub = self.private.public_key()
        if self.alg == "EdDSA":
            raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            return {"kty": "OKP", "crv": "Ed25519", "x": _b64(raw), "kid": self.kid, "alg": "EdDSA", "use": "sig"}
        nums = pub.public_numbers()
        return {
            "kty": "EC",
            "crv": "P-256",
            "x": _b64(nums.x.to_bytes(32, "big")),
            "y": _b64(nums.y.to_bytes(32, "big")),
            "kid": self.kid,
            "alg": "ES256",
            "use": "sig",
        }


def load_key(kid: str, pem: bytes) -> SigningKey:
    """A signing key from PEM (PKCS#8 or traditional); only P-256 and Ed25519 keys are accepted."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519

    try:
        private = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise AgentKeyError(f"agent token key {kid!r} is not an unencrypted PEM private key") from exc
    if isinstance(private, ed25519.Ed25519PrivateKey):
        return SigningKey(kid, "EdDSA", private)
    if isinstance(private, ec.EllipticCurvePrivateKey) and isinstance(private.curve, ec.SECP256R1):
        return SigningKey(kid, "ES256", private)
    raise AgentKeyError(f"agent token key {kid!r} must be an EC P-256 or Ed25519 private key")


def parse_keys(spec: str) -> tuple[SigningKey, ...]:
    """`kid=/path.pem,kid2=/path2.pem` -> keys in order (the last signs); AgentKeyError on anything odd."""
    out: list[SigningKey] = []
    seen: set[str] = set()
    for item in (p.strip() for p in spec.split(",")):
        if not item:
            continue
        kid, sep, path = item.partition("=")
        kid, path = kid.strip(), path.strip()
        if not sep or not kid or not path:
            raise AgentKeyError(f"AGENT_TOKEN_KEYS entries are kid=/path/to/key.pem, got {item!r}")
        if kid in seen:
            raise AgentKeyError(f"AGENT_TOKEN_KEYS names kid {kid!r} twice")
        seen.add(kid)
        try:
            pem = Path(path).read_bytes()
        except OSError as exc:
            raise AgentKeyError(f"agent token key {kid!r}: cannot read {path}: {exc.strerror}") from exc
        out.append(load_key(kid, pem))
    return tuple(out)


def generate_pem() -> bytes:
    """A fresh P-256 private key as PKCS#8 PEM (the local stack's dev key; tests)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())  # fmt: skip


@dataclass(frozen=True)
class AgentTokenIssuer:
    """Mints platform tokens with the newest key and publishes every key."""

    issuer: str
    keys: tuple[SigningKey, ...]
    ttl: int = DEFAULT_TTL

    def jwks(self) -> dict[str, Any]:
        """The JWKS document (public keys only)."""
        return {"keys": [k.public_jwk() for k in self.keys]}

    def metadata(self) -> dict[str, Any]:
        """Issuer metadata: where the keys are and what is signed with them."""
        return {
            "issuer": self.issuer,
            "jwks_uri": self.issuer + JWKS_PATH,
            "token_endpoint": self.issuer + "/agent-tokens",
            "token_signing_alg_values_supported": sorted({k.alg for k in self.keys}),
            "claims_supported": ["iss", "aud", "sub", "azp", "team_id", "sid", "sns", "srv", "iat", "nbf", "exp",
                                 "jti"],
        }  # fmt: skip

    def mint(
        self,
        *,
        human: str,
        agent: str,
        team: str,
        session: str,
        session_namespace: str,
        server: str,
        audience: str,
        not_after: float | None = None,
        now: float | None = None,
    ) -> tuple[str, int]:
        """(token, exp): bound to one human, agent, team, session and server (`aud` = its resource URL)."""
        import jwt

        issued = int(now if now is not None else time.time())
        exp = issued + self.ttl
        if not_after is not None:
            exp = min(exp, int(not_after))
        key = self.keys[-1]
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": audience,
            "sub": human,
            "azp": agent,
            "sid": session,
            "sns": session_namespace,
            "srv": server,
            "iat": issued,
            "nbf": issued,
            "exp": exp,
            "jti": uuid.uuid4().hex,
        }
        if team:
            claims["team_id"] = team
        token = jwt.encode(claims, key.private, algorithm=key.alg, headers={"kid": key.kid, "typ": "JWT"})
        return token, exp


def canonical_resource(public_base: str, name: str, spec: dict[str, Any]) -> str:
    """`https://host/<server>/mcp`: the server's canonical resource URL ("" without a public base)."""
    return public_base.rstrip("/") + public_path(name, spec) if public_base else ""


def published_auth(auth: dict[str, Any] | None, name: str, spec: dict[str, Any], public_base: str) -> dict[str, Any]:
    """`spec.auth` of a server published through the API: `platform` unless the publisher chose a mode,
    and `resource` always the server's own canonical URL (a publisher cannot claim another server's)."""
    out = dict(auth or {})
    out["mode"] = str(out.get("mode") or "platform").strip().lower()
    out.pop("resource", None)
    if out["mode"] in ("platform", "oauth") and public_base:
        out["resource"] = canonical_resource(public_base, name, spec)
    return out
