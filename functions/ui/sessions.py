"""Server-side UI sessions in a SQLite file, so a restart (or scale-to-zero) logs nobody out.

Only a SHA-256 of the session id is stored: a copy of the database file cannot be replayed as
cookies. The cookie itself carries the raw id signed with itsdangerous, so forged or truncated
cookies are rejected before any lookup.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from itsdangerous import BadSignature, Signer

_SCHEMA = """
CREATE TABLE IF NOT EXISTS ui_sessions (
    id_hash     TEXT PRIMARY KEY,
    principal   TEXT NOT NULL,
    cred_kind   TEXT NOT NULL,
    credential  TEXT NOT NULL,
    csrf        TEXT NOT NULL,
    created_at  REAL NOT NULL,
    expires_at  REAL NOT NULL
)
"""


@dataclass(frozen=True)
class Session:
    """One signed-in browser: who it is, the credential the proxy injects, its CSRF token."""

    principal: dict[str, Any]
    cred_kind: str  # "bearer" or "api_key"
    credential: str
    csrf: str
    expires_at: float

    @property
    def is_admin(self) -> bool:
        """True for admin principals."""
        return self.principal.get("role") == "admin"

    def upstream_headers(self) -> dict[str, str]:
        """The credential header the API expects."""
        if self.cred_kind == "api_key":
            return {"x-api-key": self.credential}
        return {"authorization": f"Bearer {self.credential}"}


def load_or_create_secret(directory: Path, configured: str) -> str:
    """The cookie-signing secret: configured, else one persisted beside the sessions (0600)."""
    if configured:
        return configured
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "cookie-secret"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    value = secrets.token_urlsafe(48)
    # O_EXCL: two replicas starting together must agree on one secret, so the loser re-reads.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as fh:
        fh.write(value)
    return value


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


class SessionStore:
    """SQLite-backed sessions (WAL, so several UI processes may share one volume)."""

    def __init__(self, directory: Path, secret: str) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self._path = directory / "sessions.sqlite3"
        self._signer = Signer(secret, salt="mcp-sentinel-ui-session")
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None, timeout=10.0)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(_SCHEMA)
        os.chmod(self._path, 0o600)

    def close(self) -> None:
        """Close the database handle."""
        with self._lock:
            self._db.close()

    async def create(
        self, principal: dict[str, Any], cred_kind: str, credential: str, ttl: float
    ) -> tuple[str, Session]:
        """A new session; returns (signed cookie value, session)."""
        raw = secrets.token_urlsafe(32)
        now = time.time()
        session = Session(principal, cred_kind, credential, secrets.token_urlsafe(32), now + ttl)
        row = (_hash(raw), json.dumps(principal), cred_kind, credential, session.csrf, now, session.expires_at)
        await asyncio.to_thread(self._exec, "INSERT INTO ui_sessions VALUES (?,?,?,?,?,?,?)", row)
        return self._signer.sign(raw).decode(), session

    async def get(self, cookie: str | None) -> Session | None:
        """The live session for a cookie value, or None (bad signature, unknown or expired)."""
        raw = self._unsign(cookie)
        if raw is None:
            return None
        rows = await asyncio.to_thread(
            self._query,
            "SELECT principal, cred_kind, credential, csrf, expires_at FROM ui_sessions WHERE id_hash = ?",
            (_hash(raw),),
        )
        if not rows:
            return None
        principal, kind, cred, csrf, expires = rows[0]
        if float(expires) <= time.time():
            await self.delete(cookie)
            return None
        return Session(json.loads(principal), kind, cred, csrf, float(expires))

    async def delete(self, cookie: str | None) -> None:
        """Forget a session (no-op for unknown or forged cookies)."""
        raw = self._unsign(cookie)
        if raw is not None:
            await asyncio.to_thread(self._exec, "DELETE FROM ui_sessions WHERE id_hash = ?", (_hash(raw),))

    async def prune(self) -> int:
        """Delete expired sessions; returns how many."""
        return await asyncio.to_thread(self._exec, "DELETE FROM ui_sessions WHERE expires_at <= ?", (time.time(),))

    def _unsign(self, cookie: str | None) -> str | None:
        if not cookie:
            return None
        try:
            return self._signer.unsign(cookie).decode()
        except BadSignature:
            return None

    def _exec(self, sql: str, params: tuple[Any, ...]) -> int:
        with self._lock:
            return self._db.execute(sql, params).rowcount

    def _query(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        with self._lock:
            return list(self._db.execute(sql, params).fetchall())
