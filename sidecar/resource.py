"""A server's canonical resource URL (RFC 8707 / RFC 9728) and where its metadata is published.

Tokens are bound to one server: OAuth and platform tokens must carry this URL as `aud`, and the
protected-resource metadata names it. It comes from trusted configuration only, never from the
request's `Host` or `X-Forwarded-*` (a shared ingress strips the `/<server>` prefix, so anything
request-derived would be the same for every server and one token would open them all):

1. `auth.resource` in the policy: the server's URL with its public path (`https://host/<server>/mcp`),
   set by the API when the server is published; one audience for every path of that server.
2. else `EXTERNAL_BASE_URL` (this gateway's own public base, `https://host/<server>`) + the path.
3. else nothing: the caller refuses (503 `resource_url_unconfigured`), it never guesses.
"""

from __future__ import annotations

import posixpath
from urllib.parse import urlsplit


def _clean(path: str) -> str:
    if path in ("", "/"):
        return "/"
    clean = posixpath.normpath(path)
    if clean.startswith("//"):
        clean = "/" + clean.lstrip("/")
    return clean + "/" if path.endswith("/") and clean != "/" else clean


def resource_url(policy_resource: str, external_base: str, path: str) -> str:
    """The canonical URL `path` (as this gateway sees it) belongs to; "" when none is configured."""
    if policy_resource:
        return policy_resource
    if external_base:
        return external_base + _clean(path)
    return ""


def metadata_url(policy_resource: str, external_base: str, path: str, well_known: str) -> str:
    """Where a client fetches the metadata of the resource `path` belongs to ("" when unconfigured).

    The document must be reachable through the same public route as the server itself, so the
    well-known segment goes after the server's public prefix: for `https://host/srv/mcp` seen here
    as `/mcp`, that is `https://host/srv/.well-known/oauth-protected-resource/mcp`.
    """
    if policy_resource:
        parts = urlsplit(policy_resource)
        rpath = parts.path.rstrip("/") or ""
        seen = _clean(path).rstrip("/")
        if seen and rpath.endswith(seen):
            prefix, suffix = rpath[: len(rpath) - len(seen)], seen
        else:  # a path other than the MCP endpoint: point at the endpoint's metadata
            prefix, _, last = rpath.rpartition("/")
            suffix = "/" + last if last else ""
        return f"{parts.scheme}://{parts.netloc}{prefix}{well_known}{suffix}"
    if external_base:
        return external_base + well_known + _clean(path)
    return ""


OAUTH_METADATA = "/.well-known/oauth-protected-resource"
"""Where the RFC 9728 metadata is served (and what `WWW-Authenticate` points to)."""
