"""The platform's service admin keys are not accepted from the public side of the UI.

The UI is the only function on the public ingress. Its `/api` proxy forwards a caller's own
credentials, and `/auth/login` turns an API key into a session whose key the proxy injects. A
service admin key (`ADMIN_API_KEYS`) is for in-cluster automation; arriving from the internet it
is either leaked or a template value (`x-api-key: CHANGE-ME` was admin on a fresh install,
issue 14), so the UI refuses it instead of forwarding it upstream as admin. User API keys carry
their user's role (looked up by the API) and pass.
"""

from __future__ import annotations

import hmac

from functions.ui.context import UiContext

SERVICE_KEY_REFUSED = (
    "service admin keys are not accepted through the dashboard; use them inside the cluster, "
    "or sign in (or use a personal API key) as an admin user"
)


def is_service_admin_key(ctx: UiContext, candidate: str) -> bool:
    """True when `candidate` is one of the configured service admin keys (constant-time per key)."""
    found = False
    for key in ctx.settings.admin_api_keys:
        found |= hmac.compare_digest(key.encode(), candidate.encode())
    return found
