"""Raw credential format for user API keys (`mcpu_`) and registry credentials (`mcpr_`)."""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass

USER_KEY_PREFIX = "mcpu_"
REGISTRY_KEY_PREFIX = "mcpr_"
DISPLAY_PREFIX_LEN = 8


@dataclass(frozen=True)
class NewSecret:
    """A freshly minted secret: the raw value is shown once, only the hash is stored."""

    raw: str
    key_hash: str
    prefix: str


def hash_secret(raw: str) -> str:
    """Lower-case hex SHA-256 (keys carry 256 random bits, so a fast hash is enough)."""
    return hashlib.sha256(raw.encode()).hexdigest()


def mint(kind_prefix: str) -> NewSecret:
    """`<prefix>` + base64url-no-pad(32 random bytes)."""
    raw = kind_prefix + base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    return NewSecret(raw=raw, key_hash=hash_secret(raw), prefix=raw[:DISPLAY_PREFIX_LEN])
