"""One module per resource, and the table of which paths each module serves.

The API mounts a resource's routes the first time a request needs them (see
`functions.api.lazy_routes`), so a cold start pays for FastAPI's route building (about 100 ms
for all of them here) only for what it serves. `GROUPS` therefore names each module with the
path prefixes its routes live under, without importing it. A new route module is appended here;
`tests/api/test_lazy_routes.py` fails when a route is not covered by its module's prefixes.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RouteGroup:
    """A route module (`functions.api.routes.<module>`) and the path prefixes its routes use.

    A prefix matches on a segment boundary: `/api/users` covers `/api/users` and
    `/api/users/42`, not `/api/usersx`.
    """

    module: str
    prefixes: tuple[str, ...]

    def serves(self, path: str) -> bool:
        """Whether a request for `path` may be answered by one of this module's routes."""
        return any(path == p or path.startswith(p + "/") for p in self.prefixes)


# Mount order: the routes of earlier groups are matched first, whatever order they load in.
GROUPS: tuple[RouteGroup, ...] = (
    RouteGroup("health", ("/health", "/ready")),
    RouteGroup("auth", ("/api/auth",)),
    RouteGroup("users", ("/api/users",)),
    RouteGroup("keys", ("/api/user/api-keys", "/api/user/registry-credentials")),
    RouteGroup("registry", ("/api/registry", "/api/user/activity")),
    RouteGroup("admin", ("/api/admin/audit", "/api/admin/namespaces", "/api/admin/operations")),
    RouteGroup("teams", ("/api/runtime/teams", "/api/runtime/namespaces")),
    RouteGroup("events", ("/api/events", "/api/event-types", "/api/sources", "/api/stats",
                          "/api/runtime/server-events")),
    RouteGroup("analytics", ("/api/analytics", "/api/dashboard", "/api/user/analytics")),
    RouteGroup("servers", ("/api/deployments", "/api/admin/deployments", "/api/runtime/servers",
                           "/api/runtime/tools")),
    RouteGroup("governance", ("/api/runtime/grants",)),
    RouteGroup("sessions", ("/api/runtime/sessions",)),
    RouteGroup("adapter", ("/api/runtime/adapter",)),
    RouteGroup("agent_tokens", ("/api/agent-tokens", "/api/.well-known")),
    RouteGroup("policy", ("/api/runtime/policy",)),
    RouteGroup("runtime", ("/api/runtime/components", "/api/runtime/observability", "/api/runtime/actions")),
    RouteGroup("pins", ("/api/runtime/tool-pins",)),
    RouteGroup("approvals", ("/api/approvals", "/api/gateway/approvals")),
)

# Mounted with the app: the platform's probes must not pay for a route module on a cold start.
EAGER: frozenset[str] = frozenset({"health"})
