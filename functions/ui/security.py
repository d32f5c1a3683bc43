"""Response hardening (§8.4 headers with a strict CSP), the HTTPS redirect and CSRF checks."""

from __future__ import annotations

import hmac
import ipaddress
from urllib.parse import urlsplit

from starlette.requests import Request

from functions.ui.settings import UiSettings

# Google Identity Services (the "Sign in with Google" button), as Google documents its CSP: the
# client script, its stylesheet, and its iframes and fetches under /gsi/ (nothing else of Google).
GSI_SCRIPT = "https://accounts.google.com/gsi/client"
GSI_STYLE = "https://accounts.google.com/gsi/style"
GSI_PREFIX = "https://accounts.google.com/gsi/"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CSRF_HEADER = "x-csrf-token"


def content_security_policy(settings: UiSettings) -> str:
    """Only our own origin; the Google sign-in sources appear only when a client id is configured."""
    google = bool(settings.google_client_id)
    return "; ".join(
        (
            "default-src 'self'",
            f"script-src 'self' {GSI_SCRIPT}" if google else "script-src 'self'",
            f"style-src 'self' {GSI_STYLE}" if google else "style-src 'self'",
            "img-src 'self' data:",
            "font-src 'self'",
            f"connect-src 'self' {GSI_PREFIX}" if google else "connect-src 'self'",
            f"frame-src {GSI_PREFIX}" if google else "frame-src 'none'",
            "object-src 'none'",
            "frame-ancestors 'none'",
            "base-uri 'self'",
            "form-action 'self'",
        )
    )


def security_headers(settings: UiSettings) -> dict[str, str]:
    """Headers every response carries."""
    return {
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "strict-origin-when-cross-origin",
        "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=(), interest-cohort=()",
        "Content-Security-Policy": content_security_policy(settings),
        "X-Frame-Options": "DENY",
        # Google's sign-in popup must be able to answer the page that opened it (when the browser
        # does not use FedCM); `same-origin` would sever it. Without Google nothing opens popups.
        "Cross-Origin-Opener-Policy": "same-origin-allow-popups" if settings.google_client_id else "same-origin",
    }


def is_https(request: Request) -> bool:
    """TLS on this hop, or a proxy in front says the browser used HTTPS."""
    proto = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return request.url.scheme == "https" or proto == "https"


def _is_local(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    name = name.strip("[]").lower()
    if name in ("localhost", "") or name.endswith(".localhost"):
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def public_host(request: Request) -> str:
    """The host the browser used (a fronting proxy's X-Forwarded-Host, else Host)."""
    return request.headers.get("x-forwarded-host", "").split(",")[0].strip() or request.headers.get("host", "")


def https_redirect(request: Request, settings: UiSettings) -> str | None:
    """The https:// URL to 308 to, or None (local hosts and /auth/admin-check are never redirected)."""
    if settings.require_https == "false" or request.url.path == "/auth/admin-check" or is_https(request):
        return None
    host = public_host(request)
    if not host or _is_local(host):
        return None
    forwarded_http = request.headers.get("x-forwarded-proto", "").strip().lower() == "http"
    if settings.require_https == "auto" and not forwarded_http:
        return None
    query = f"?{request.url.query}" if request.url.query else ""
    return f"https://{host}{request.url.path}{query}"


def same_origin(request: Request) -> bool:
    """False when the browser says the request came from another site (Origin or, lacking it, Referer)."""
    origin = request.headers.get("origin") or request.headers.get("referer")
    if not origin:
        # Non-browser clients send neither; browsers always send Origin on cross-site unsafe requests.
        return request.headers.get("sec-fetch-site", "same-origin") in ("same-origin", "none")
    if origin == "null":
        return False
    host = urlsplit(origin).netloc.lower()
    allowed = {request.headers.get("host", "").lower(), public_host(request).lower()}
    return host in allowed


def csrf_ok(request: Request, expected: str) -> bool:
    """The synchronizer token in `X-CSRF-Token` matches the session's, and the origin is ours."""
    supplied = request.headers.get(CSRF_HEADER, "")
    return bool(supplied) and hmac.compare_digest(supplied.encode(), expected.encode()) and same_origin(request)
