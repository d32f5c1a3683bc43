"""What the API accepts as an MCPServer's source: an image, or a remote server's URL.

A remote server (`gateway.upstreamURL`, no `image`) runs elsewhere; the platform runs only its
gateway, so the gateway is on whatever the body says about it. The URL rules are
`mcp_sentinel.upstream_url` (shared with the reconcilers); on top, only an admin may point a
gateway at the platform's own host (loopback, link-local: e.g. the local stack's API or a cloud
metadata address).
"""

from __future__ import annotations

from typing import Any

from functions.api.errors import bad_request, forbidden
from mcp_sentinel.identity.principal import Principal
from mcp_sentinel.upstream_url import UpstreamURLError, check_upstream_url, internal_host


def checked_gateway(p: Principal, image: str, gateway: dict[str, Any] | None) -> dict[str, Any] | None:
    """The `gateway` to store; 400 without an image or a valid upstream URL, 403 for a non-admin's internal URL."""
    raw = (gateway or {}).get("upstreamURL")
    if raw is None or raw == "":
        if not image.strip():
            raise bad_request("image is required (or gateway.upstreamURL for a remote server)")
        return gateway
    try:
        url = check_upstream_url(raw)
    except UpstreamURLError as exc:
        raise bad_request(str(exc)) from None
    if internal_host(url) and not p.is_admin:
        raise forbidden("only admins may point a gateway at the platform's own host")
    out = {**(gateway or {}), "upstreamURL": url}
    if not image.strip():
        if out.get("enabled") is False:
            raise bad_request("a remote server (no image) is reachable only through its gateway: "
                              "gateway.enabled cannot be false")
        out["enabled"] = True
    return out
