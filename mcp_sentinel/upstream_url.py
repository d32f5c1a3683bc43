"""`spec.gateway.upstreamURL` of a remote MCP server: what the API accepts and the reconcilers run.

A remote server is an MCP server that runs elsewhere; its gateway forwards `/mcp...` to
`<upstreamURL>/mcp...`. The URL is a base (scheme, host, optional port and path prefix): no
credentials (they would show in every listing and log; upstream credentials belong in a Secret),
no query or fragment. Who may point a gateway at the platform's own network is a separate,
caller-dependent rule (`internal_host`), applied by the API.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

# The published form (the API's OpenAPI schema uses this pattern, so what it documents as valid is
# what this module accepts): http(s), an ASCII host name or IPv4 literal, a port 0-65535, a path
# without whitespace, control characters, query or fragment. IPv6 literals are not published (no
# JSON Schema pattern tells a valid one from "[D:]"): name such an upstream by DNS.
_PORT = r"([0-9]{1,4}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
UPSTREAM_URL_PATTERN = (
    r"^https?://([A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?)"
    rf"(:{_PORT})?(/[^\s?#\x00-\x1f\x7f]*)?$"
)
_PATTERN = re.compile(UPSTREAM_URL_PATTERN)


class UpstreamURLError(ValueError):
    """The upstream URL is not one a gateway may front."""


def check_upstream_url(raw: object) -> str:
    """The normalized base URL (no trailing slash); UpstreamURLError with a reason otherwise."""
    if not isinstance(raw, str) or not raw.strip():
        raise UpstreamURLError("gateway.upstreamURL must be a non-empty string")
    text = raw.strip()
    if len(text) > 2048 or any(c.isspace() or ord(c) < 0x20 for c in text):
        raise UpstreamURLError("gateway.upstreamURL must be a URL without whitespace (at most 2048 characters)")
    try:
        parts = urlsplit(text)  # raises ValueError on a bracketed host that is no IP literal ("[D:]")
        hostname = parts.hostname
    except ValueError:
        raise UpstreamURLError(f"gateway.upstreamURL has an invalid host: {text!r}") from None
    if parts.scheme not in ("http", "https") or not hostname:
        raise UpstreamURLError(f"gateway.upstreamURL must be an absolute http(s) URL, got {text!r}")
    if parts.username is not None or parts.password is not None:
        raise UpstreamURLError("gateway.upstreamURL must not carry credentials (use a Secret for upstream tokens)")
    if parts.query or parts.fragment:
        raise UpstreamURLError("gateway.upstreamURL must be a base URL without query or fragment")
    try:
        _ = parts.port
    except ValueError:
        raise UpstreamURLError(f"gateway.upstreamURL has an invalid port: {text!r}") from None
    if not _PATTERN.fullmatch(text):
        raise UpstreamURLError("gateway.upstreamURL must be an absolute http(s) URL: an ASCII host name or IP, "
                               "an optional port and path; no credentials, query or fragment")
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


def internal_host(url: str) -> bool:
    """Whether the URL names this machine or a link-local/unspecified address by a literal or `localhost`.

    Only literals are judged: a DNS name is resolved by the gateway at connect time, so a name that
    later resolves inward is not caught here (documented in SECURITY.md).
    """
    host = (urlsplit(url).hostname or "").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return ip.is_loopback or ip.is_link_local or ip.is_unspecified
