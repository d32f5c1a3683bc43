"""TLS on the proxy port: mandatory verified client certificates, and hot certificate reload.

With `TLS_CERT_FILE`/`TLS_KEY_FILE`/`TLS_CLIENT_CA_FILE` the proxy port speaks TLS ≥ 1.2 only and
completes a handshake only with a client certificate signed by the client CA (upstream §4.1). In
mTLS mode that client is the TLS-terminating ingress, which vouches for the caller's SPIFFE ID in
a header (`sidecar.mtls`). Certificates are short-lived in SPIFFE deployments, so the files are
polled (mtime and size) and a changed pair is loaded into the same `SSLContext`, which new
handshakes use; a pair that fails to load is logged and the previous one keeps serving.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
from collections.abc import Callable
from typing import Any

from sidecar.errors import TlsConfigError as TlsConfigError  # re-exported: raised here

log = logging.getLogger("sidecar.tls")


def server_context(cert_file: str, key_file: str, client_ca_file: str) -> ssl.SSLContext:
    """A server context that requires and verifies client certificates (TLS 1.2 or newer)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.verify_mode = ssl.CERT_REQUIRED
    try:
        ctx.load_cert_chain(cert_file, key_file)
        ctx.load_verify_locations(cafile=client_ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise TlsConfigError(f"cannot load TLS files ({cert_file}, {key_file}, {client_ca_file}): {exc}") from exc
    return ctx


def _stamp(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


class CertReloader:
    """Reloads the server certificate and key into `ctx` when either file changes."""

    def __init__(
        self,
        ctx: ssl.SSLContext,
        cert_file: str,
        key_file: str,
        on_result: Callable[[str], None] | None = None,
    ) -> None:
        self.ctx = ctx
        self.cert_file = cert_file
        self.key_file = key_file
        self._on_result = on_result or (lambda _result: None)
        self._seen = (_stamp(cert_file), _stamp(key_file))

    def check(self) -> bool:
        """Load the pair if it changed since the last look; True iff a new pair is now in use."""
        seen = (_stamp(self.cert_file), _stamp(self.key_file))
        if seen == self._seen:
            return False
        self._seen = seen
        try:
            # Replaces the context's certificate for new handshakes; established connections keep theirs.
            self.ctx.load_cert_chain(self.cert_file, self.key_file)
        except (OSError, ssl.SSLError) as exc:
            # Often a half-written rotation (new cert, old key): the next change retries.
            log.warning("TLS certificate reload failed, keeping the previous certificate: %s", exc)
            self._on_result("error")
            return False
        log.info("TLS certificate reloaded from %s", self.cert_file)
        self._on_result("success")
        return True

    async def run(self, interval: float) -> None:
        """Poll every `interval` seconds until cancelled."""
        while True:
            await asyncio.sleep(interval)
            self.check()


def peer_uri_sans(peercert: dict[str, Any] | None) -> tuple[str, ...]:
    """The URI subject alternative names of a verified peer certificate (`SSLObject.getpeercert()`)."""
    if not peercert:
        return ()
    return tuple(value for kind, value in peercert.get("subjectAltName", ()) if kind == "URI")
