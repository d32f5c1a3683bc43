"""Password hashing with argon2id (memory-hard; upstream used bcrypt cost 12)."""

from __future__ import annotations

import asyncio
import base64
import os
from dataclasses import dataclass

import argon2
from argon2.low_level import Type

MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024  # bounds hashing work per request


@dataclass(frozen=True)
class HashParams:
    """argon2id cost parameters (defaults: argon2-cffi's RFC 9106 low-memory profile)."""

    time_cost: int = 3
    memory_cost_kib: int = 65536
    parallelism: int = 4


def _unmatchable_hash(p: HashParams) -> str:
    """A well-formed argon2id PHC string with these parameters that no password matches.

    Verifying against it costs exactly a real verification (argon2 recomputes the digest with the
    string's own parameters), and building it costs nothing, where hashing a dummy password cost
    one full argon2id run (64 MiB, about 100-450 ms here) in every cold start's `create_app`.
    """

    def b64(n: int) -> str:
        return base64.b64encode(os.urandom(n)).decode().rstrip("=")

    # argon2-cffi's defaults: 16-byte salt, 32-byte digest (what `hash()` produces).
    return f"$argon2id$v=19$m={p.memory_cost_kib},t={p.time_cost},p={p.parallelism}${b64(16)}${b64(32)}"


class PasswordHasher:
    """Hashes and verifies passwords off the event loop."""

    def __init__(self, params: HashParams | None = None) -> None:
        p = params or HashParams()
        self._hasher = argon2.PasswordHasher(
            time_cost=p.time_cost, memory_cost=p.memory_cost_kib, parallelism=p.parallelism, type=Type.ID
        )
        # Verifying against this keeps unknown-email logins as slow as wrong-password ones.
        self._dummy = _unmatchable_hash(p)

    def hash_sync(self, password: str) -> str:
        """An `$argon2id$...` PHC string."""
        return self._hasher.hash(password)

    async def hash(self, password: str) -> str:
        """`hash_sync` in a worker thread (argon2 is deliberately slow)."""
        return await asyncio.to_thread(self._hasher.hash, password)

    def verify_sync(self, stored: str | None, password: str) -> bool:
        """True when `password` matches `stored`; a missing hash burns the same time and fails."""
        try:
            return self._hasher.verify(stored or self._dummy, password) and stored is not None
        except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
            return False

    async def verify(self, stored: str | None, password: str) -> bool:
        """`verify_sync` in a worker thread."""
        return await asyncio.to_thread(self.verify_sync, stored, password)


def validate_password(password: str) -> str | None:
    """An error message, or None when the password is acceptable."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"password must be at least {MIN_PASSWORD_LENGTH} characters"
    if len(password) > MAX_PASSWORD_LENGTH:
        return f"password must be at most {MAX_PASSWORD_LENGTH} characters"
    return None
