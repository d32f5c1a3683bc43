"""Live-inventory credentials: short-lived tokens the API signs per server, each server's sidecar verifies.

Why signatures and not a shared secret: the API sends the credential to an address the server's
team controls (its Service), so whoever runs that address sees it. With one cluster-wide token
(upstream, and our first version) a team could point its Service at its own pod, capture the token
and read every other server's unfiltered inventory. Here the API holds an Ed25519 private key that
never leaves it; sidecars hold only public keys (nothing secret to leak); a token names exactly one
server in its audience (`urn:mcp-sentinel:inventory:<namespace>/<name>`), lives `DEFAULT_TTL`
seconds (verifiers refuse lifetimes over `MAX_LIFETIME`), so a captured token opens nothing but
the inventory of the server whose address captured it, and only for a minute.

Tokens are compact JWS (RFC 7515/7519) with `alg: EdDSA`, `typ: sentinel-inventory+jwt` (so no
other token type of the platform can be replayed as one) and `kid` = the key's thumbprint, so a
verifier can hold the old and the new public key during a rotation.

`jwt` and `cryptography` are imported inside the functions: the sidecar loads them only when its
inventory listener is enabled, the API only when it signs.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ISSUER = "mcp-sentinel-api"
TYP = "sentinel-inventory+jwt"
DEFAULT_TTL = 60
MAX_LIFETIME = 300
LEEWAY = 5
_PEM_PUBLIC = "-----BEGIN PUBLIC KEY-----"


class InventoryKeyError(ValueError):
    """A key file is missing, unreadable or not an Ed25519 key (the message names the file)."""


class TokenRejected(Exception):
    """The token does not open this server's inventory; `reason` is short and safe to log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def audience(namespace: str, name: str) -> str:
    """The one audience a token for the server `namespace/name` carries."""
    return f"urn:mcp-sentinel:inventory:{namespace}/{name}"


def key_id(public_key: Any) -> str:
    """A stable id for an Ed25519 public key: base64url of SHA-256 of its raw bytes, 22 characters."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.urlsafe_b64encode(hashlib.sha256(raw).digest()).decode()[:22]


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise InventoryKeyError(f"cannot read inventory key file {path}: {exc.strerror or exc}") from None


def load_signing_key(path: str) -> Any:
    """The Ed25519 private key in the PEM file `path` (InventoryKeyError otherwise)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        key = load_pem_private_key(_read(path), password=None)
    except (ValueError, TypeError) as exc:
        raise InventoryKeyError(f"inventory signing key {path} is not an unencrypted PEM private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise InventoryKeyError(f"inventory signing key {path} must be an Ed25519 key")
    return key


def load_verify_keys(path: str) -> dict[str, Any]:
    """Every Ed25519 public key in the PEM file `path`, by `key_id` (one or more: rotation)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    text = _read(path).decode("ascii", "replace")
    blocks = [_PEM_PUBLIC + b for b in text.split(_PEM_PUBLIC)[1:]]
    if not blocks:
        raise InventoryKeyError(f"inventory public key file {path} holds no PEM public key")
    keys: dict[str, Any] = {}
    for block in blocks:
        try:
            key = load_pem_public_key(block.encode())
        except (ValueError, TypeError) as exc:
            raise InventoryKeyError(f"inventory public key file {path} has an unreadable key: {exc}") from None
        if not isinstance(key, Ed25519PublicKey):
            raise InventoryKeyError(f"inventory public key file {path} holds a key that is not Ed25519")
        keys[key_id(key)] = key
    return keys


def public_pem(private_key: Any) -> bytes:
    """The PEM public key of `private_key` (what the sidecars are given)."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    data: bytes = private_key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    return data


def generate_pem() -> bytes:
    """A fresh Ed25519 private key as unencrypted PKCS#8 PEM (local stack, tests, `dev` tooling)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

    return Ed25519PrivateKey.generate().private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())


@dataclass
class Signer:
    """Mints inventory tokens with the API's private key."""

    key: Any
    ttl: int = DEFAULT_TTL

    def __post_init__(self) -> None:
        self.kid = key_id(self.key.public_key())

    def mint(self, namespace: str, name: str, now: float | None = None) -> str:
        """A token that opens the inventory of `namespace/name` only, for `ttl` seconds."""
        import jwt

        iat = int(time.time() if now is None else now)
        claims = {"iss": ISSUER, "aud": audience(namespace, name), "iat": iat, "exp": iat + self.ttl,
                  "jti": secrets.token_urlsafe(12)}
        return jwt.encode(claims, self.key, algorithm="EdDSA", headers={"kid": self.kid, "typ": TYP})


def verify(token: str, keys: dict[str, Any], namespace: str, name: str, now: float | None = None) -> dict[str, Any]:
    """The claims of a token that opens `namespace/name`'s inventory now, else TokenRejected."""
    import jwt

    if not token:
        raise TokenRejected("missing_token")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise TokenRejected("malformed_token") from None
    if header.get("alg") != "EdDSA" or header.get("typ") != TYP:
        raise TokenRejected("wrong_token_type")
    key = keys.get(str(header.get("kid") or ""))
    if key is None:
        raise TokenRejected("unknown_key")
    t = time.time() if now is None else now
    try:
        claims: dict[str, Any] = jwt.decode(
            token, key, algorithms=["EdDSA"], audience=audience(namespace, name), issuer=ISSUER, leeway=LEEWAY,
            options={"require": ["exp", "iat", "aud", "iss"], "verify_iat": False, "verify_exp": False},
        )
    except jwt.InvalidAudienceError:
        raise TokenRejected("wrong_server") from None
    except jwt.PyJWTError:
        raise TokenRejected("invalid_token") from None
    if claims.get("aud") != audience(namespace, name):  # exactly this server, never a list naming others too
        raise TokenRejected("wrong_server")
    iat, exp = claims.get("iat"), claims.get("exp")
    if not isinstance(iat, int) or not isinstance(exp, int) or isinstance(iat, bool) or isinstance(exp, bool):
        raise TokenRejected("invalid_token")
    # The clock checks are ours (against `now`, testable): not yet valid, expired, or minted to live too long.
    if iat > t + LEEWAY or exp <= t - LEEWAY:
        raise TokenRejected("expired_token")
    if exp - iat > MAX_LIFETIME:
        raise TokenRejected("lifetime_too_long")
    return claims
