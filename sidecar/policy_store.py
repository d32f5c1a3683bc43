"""The active policy snapshot and its hot reload from POLICY_FILE.

Reload polls the file's (inode, size, mtime) every `poll_interval` seconds and reloads only
when that signature (and then the content hash) changed — upstream re-read every 5 s blindly
(§11.20). A bad document never replaces the last good one; it is counted and reported.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from mcp_sentinel.policy import PolicyError, load_policy
from mcp_sentinel.policy.evaluate import CompiledPolicy

log = logging.getLogger("sidecar.policy")


@dataclass(frozen=True)
class PolicyStatus:
    """What `/config/status` reports (never grants, sessions or tools)."""

    ready: bool
    schema_version: str = ""
    revision: str = ""
    loaded_at: float = 0.0
    last_reload_error: str = ""
    reload_failures: int = 0


class PolicyStore:
    """Holds the current `CompiledPolicy` (or None) and reloads it when the file changes."""

    def __init__(
        self,
        path: str,
        *,
        poll_interval: float = 0.5,
        on_reload: Callable[[bool], None] | None = None,
        accept: Callable[[CompiledPolicy], str] | None = None,
    ) -> None:
        """`accept(compiled)` returns why this process must not run that policy ("" = fine): a
        valid document the process's own configuration cannot enforce safely is refused like a
        broken one (the last good policy stays), and `refusal` keeps the reason for start-up."""
        self.path = path
        self.poll_interval = poll_interval
        self.current: CompiledPolicy | None = None  # swapped atomically, requests keep their snapshot
        self.loaded_at = 0.0
        self.last_error = ""
        self.failures = 0
        self._sig: tuple[int, int, int] | None = None
        self._digest = b""
        self._on_reload = on_reload or (lambda _ok: None)
        self._accept = accept or (lambda _p: "")
        self.refusal = ""

    def status(self) -> PolicyStatus:
        """A status snapshot for `/ready` and `/config/status`."""
        cur = self.current
        if cur is None:
            return PolicyStatus(ready=False, last_reload_error=self.last_error, reload_failures=self.failures)
        doc = cur.doc
        return PolicyStatus(
            ready=True,
            schema_version=str(getattr(doc, "schema_version", "")),
            revision=str(getattr(doc, "revision", "")),
            loaded_at=self.loaded_at,
            last_reload_error=self.last_error,
            reload_failures=self.failures,
        )

    def check(self) -> bool:
        """Reload if the file changed; returns True when a new policy was activated."""
        if not self.path:
            return False
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            if self.current is None:
                self.last_error = f"policy file {self.path} does not exist"
            self._sig = None
            return False
        except OSError as exc:
            return self._fail(f"cannot stat policy file: {exc}")
        sig = (st.st_ino, st.st_size, st.st_mtime_ns)
        if sig == self._sig:
            return False
        self._sig = sig
        try:
            with open(self.path, "rb") as fh:
                raw = fh.read()
        except OSError as exc:
            return self._fail(f"cannot read policy file: {exc}")
        digest = hashlib.sha256(raw).digest()
        if digest == self._digest and self.current is not None:
            return False  # touched but unchanged: not a reload
        try:
            compiled = load_policy(raw)
        except PolicyError as exc:
            return self._fail(str(exc))
        except (ValueError, TypeError) as exc:  # a malformed document must never take the sidecar down
            return self._fail(f"invalid policy document: {exc}")
        refusal = self._accept(compiled)
        if refusal:
            self.refusal = refusal
            return self._fail(refusal)
        self.refusal = ""
        self.current = compiled
        self._digest = digest
        self.loaded_at = time.time()
        self.last_error = ""
        self._on_reload(True)
        log.info("policy loaded revision=%s", getattr(compiled.doc, "revision", ""))
        return True

    def _fail(self, message: str) -> bool:
        self.last_error = message
        self.failures += 1
        self._on_reload(False)
        log.warning("policy reload failed (keeping last good policy): %s", message)
        return False

    async def watch(self) -> None:
        """Poll forever (cancel to stop)."""
        while True:
            await asyncio.sleep(self.poll_interval)
            try:
                self.check()
            except Exception:  # the watcher must survive anything a bad file can do
                log.exception("policy watcher error")
