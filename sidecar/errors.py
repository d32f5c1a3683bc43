"""Every error (and pre-decision refusal) the sidecar raises, in one place.

The modules that raise them import them from here, so a handler catching an error and the code
raising it name the same class; each stays importable from its old module too (the import there).
`SettingsError` stays in `sidecar.settings`, which owns configuration parsing.
"""

from __future__ import annotations

from dataclasses import dataclass


class AuthFailure(Exception):
    """Authentication failed; `reason` is the §3.4 reason string, `status` the HTTP status."""

    def __init__(self, reason: str, status: int, detail: str = "") -> None:
        super().__init__(detail or reason)
        self.reason = reason
        self.status = status
        self.detail = detail or reason


class AmbiguousIdentity(Exception):
    """Header mode: an identity header was sent more than once (which copy did the adapter set?)."""

    def __init__(self, header: str) -> None:
        super().__init__(f"identity header {header} sent more than once")
        self.header = header


class EncodingError(Exception):
    """A body that cannot be decoded: `unsupported` (415) or `corrupt`/`too_large`."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class Unfilterable(ValueError):
    """An answer the gateway must filter but cannot parse."""


class UpstreamError(ConnectionResetError):
    """The upstream could not be reached, closed the connection early, or sent a malformed response."""


class OriginConfigError(ValueError):
    """An `ALLOWED_HOSTS`/`ALLOWED_ORIGINS` entry that cannot be parsed."""


class TlsConfigError(ValueError):
    """The certificate, key or client CA cannot be loaded at start-up."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a request is refused before any decision: HTTP status, JSON-RPC code, message, reason."""

    status: int
    code: int
    message: str
    reason: str
