"""What one MCPServer asks of the local stack (pure: no I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from localstack.front_door.routes_file import RESERVED_NAMES
from localstack.front_door.settings import SERVER_NAME
from mcp_sentinel.kube.server_render import auth_mode, public_path, routable, route_prefix
from mcp_sentinel.upstream_url import UpstreamURLError, check_upstream_url

NO_CONTAINER_RUNTIME = "NoContainerRuntime"


@dataclass(frozen=True)
class Plan:
    """A server's identity, its front-door route, its upstream, or why it cannot run here."""

    namespace: str
    name: str
    generation: int
    route: str = ""  # the front-door route name: /<route>/mcp
    upstream: str = ""
    problem: tuple[str, str] | None = None  # (reason, message) when it cannot run locally

    @property
    def key(self) -> str:
        """`namespace/name`."""
        return f"{self.namespace}/{self.name}"


def route_name(name: str, spec: dict[str, Any]) -> str | None:
    """The front-door route of the server's public path (`server_render.public_path`: the API's canonical
    URL, so its platform tokens' audience); None for a path the front door cannot serve (`/<route>/mcp` only)."""
    prefix = route_prefix(name, spec)
    if public_path(name, spec) != f"/{prefix}/mcp" or not SERVER_NAME.match(prefix) or prefix in RESERVED_NAMES:
        return None
    return prefix


def plan(obj: dict[str, Any]) -> Plan:
    """What to run for `obj`; a Plan with `problem` set when the local stack cannot run it."""
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    base = Plan(str(meta.get("namespace") or ""), str(meta.get("name") or ""), int(meta.get("generation") or 1))
    gateway = spec.get("gateway") or {}
    if str(spec.get("image") or "").strip():
        return _with(base, NO_CONTAINER_RUNTIME,
                     "image servers need a container runtime, which the local stack does not have; "
                     "register the running server by URL instead (spec.gateway.upstreamURL without spec.image)")
    if not gateway.get("upstreamURL"):
        return _with(base, "NoUpstream", "neither spec.image nor spec.gateway.upstreamURL is set")
    try:
        upstream = check_upstream_url(gateway.get("upstreamURL"))
    except UpstreamURLError as exc:
        return _with(base, "InvalidUpstreamURL", str(exc))
    if gateway.get("enabled") is not True:
        return _with(base, "GatewayDisabled",
                     "a remote server is reachable only through its gateway: set spec.gateway.enabled")
    if not routable(obj):
        # As in a cluster (no public ingress): header mode trusts identity headers anyone could send.
        return _with(base, "NotRoutable",
                     f"auth mode {auth_mode(obj)!r} is never routed publicly; use platform or oauth")
    route = route_name(base.name, spec)
    if route is None:
        return _with(base, "UnroutablePath", "the local front door serves only /<name>/mcp public paths")
    return Plan(base.namespace, base.name, base.generation, route=route, upstream=upstream)


def _with(base: Plan, reason: str, message: str) -> Plan:
    return Plan(base.namespace, base.name, base.generation, problem=(reason, message))
