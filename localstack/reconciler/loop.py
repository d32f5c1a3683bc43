"""List, watch and reconcile MCPServers into sidecars, routes and status.

One thread does everything, in order, so there is no locking: a relist every `resync_seconds`
(restarts dead sidecars, re-delivers policies, drops servers whose delete event was missed) and,
between relists, a watch whose events are reconciled as they arrive. Registration order per server:
policy, sidecar ready, route, then `Ready=True`, so a client that sees Ready can call; deletion
removes the route before the process, so the front door never forwards to a dying sidecar.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from localstack.front_door.routes_file import write_routes
from localstack.reconciler.conditions import (
    GATEWAY_READY,
    POLICY_DELIVERED,
    READY,
    Condition,
    build_status,
    same_status,
)
from localstack.reconciler.plan import Plan, plan
from localstack.reconciler.probe import upstream_problem
from localstack.reconciler.processes import SidecarPool, fingerprint
from localstack.reconciler.settings import ReconcilerSettings
from mcp_sentinel.gateway_credentials import GatewayBinding, issue
from mcp_sentinel.kube.errors import KubeError, NotFound, translate
from mcp_sentinel.kube.resources import GROUP, MCP_SERVER, VERSION, SentinelKube
from mcp_sentinel.policy import PolicyError
from mcp_sentinel.secrets_check import LOCAL_DEV_FLAG

log = logging.getLogger(__name__)
Obj = dict[str, Any]
# Delivers one server's policy: (kube, namespace, name, output_dir) -> revision; PolicyError when invalid.
PolicyDelivery = Callable[[SentinelKube, str, str, Any], str]


def api_policy_delivery(kube: SentinelKube, namespace: str, name: str, output_dir: Any) -> str:
    """The one policy delivery (ConfigMap + local file) the API and the workflows use: the same text, no fight."""
    from mcp_sentinel.policy_delivery import deliver_policy

    return deliver_policy(kube.objects, namespace, name, output_dir=output_dir).revision


def _key(obj: Obj) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


class Reconciler:
    """The local MCPServer controller."""

    def __init__(
        self, settings: ReconcilerSettings, kube: SentinelKube, pool: SidecarPool,
        deliver: PolicyDelivery = api_policy_delivery, on_error: Callable[[], None] = lambda: None,
        probe: Callable[[str], str | None] = upstream_problem,
    ) -> None:  # fmt: skip
        from kubernetes import client as k8s

        self.s = settings
        self.kube = kube
        self.pool = pool
        self.deliver = deliver
        self._co: Any = k8s.CustomObjectsApi(kube.api)
        self.routes: dict[str, str] = {}  # route -> sidecar base URL
        self.route_owner: dict[str, str] = {}  # route -> namespace/name
        self.revisions: dict[str, tuple[int, str]] = {}  # namespace/name -> (generation, policy revision)
        self.on_error = on_error
        self.probe = probe
        self._static_routes = {k.partition("/")[2] for k in settings.static_servers}

    # ----- the outer loop ------------------------------------------------------------------

    def run(self, ready: Callable[[], None] | None = None) -> None:
        """Relist and watch forever (until SystemExit from a signal); `ready` is called after the first relist."""
        first = True
        write_routes(self.s.routes_file, {})  # a table left by a previous run names dead ports
        while True:
            try:
                rv = self.resync()
            except KubeError as exc:
                self.on_error()
                log.warning("relist failed (retrying): %s", exc)
                time.sleep(1.0)
                continue
            if first and ready is not None:
                ready()
            first = False
            self.watch(rv, self.s.resync_seconds)

    def resync(self) -> str:
        """Reconcile every MCPServer (oldest first: the first claimant of a route keeps it); returns the list's RV."""
        listed = translate(partial(self._co.list_cluster_custom_object, GROUP, VERSION, MCP_SERVER.plural))
        items = [o for o in listed.get("items") or [] if _key(o) not in self.s.static_servers]
        present = {_key(o) for o in items}
        for key in {*self.pool.running, *self.route_owner.values(), *self.revisions} - present:
            self.remove(key)
        items.sort(key=lambda o: (str((o.get("metadata") or {}).get("creationTimestamp") or ""), _key(o)))
        for obj in items:
            self.reconcile(obj, resync=True)
        return str((listed.get("metadata") or {}).get("resourceVersion") or "")

    def watch(self, rv: str, seconds: float) -> None:
        """Reconcile watch events from `rv` for about `seconds` (any failure just ends the watch: a relist follows)."""
        from kubernetes import watch

        w: Any = watch.Watch()  # type: ignore[no-untyped-call]
        try:
            for event in w.stream(self._co.list_cluster_custom_object, GROUP, VERSION, MCP_SERVER.plural,
                                  resource_version=rv, timeout_seconds=max(1, round(seconds))):  # fmt: skip
                obj, etype = event.get("object") or {}, event.get("type")
                if not isinstance(obj, dict) or etype not in ("ADDED", "MODIFIED", "DELETED"):
                    return  # ERROR (e.g. 410 Expired) or BOOKMARK handling: relist
                if _key(obj) in self.s.static_servers:
                    continue
                if etype == "DELETED":
                    self.remove(_key(obj))
                else:
                    self.reconcile(obj)
        except Exception as exc:  # the watch is only an accelerator; the relist is the source of truth
            log.warning("watch ended: %s", exc)
        finally:
            w.stop()

    # ----- one server ----------------------------------------------------------------------

    def reconcile(self, obj: Obj, *, resync: bool = False) -> None:
        """Bring one server's sidecar, route and status in line with its spec."""
        p = plan(obj)
        try:
            self._reconcile(obj, p, resync)
        except KubeError as exc:
            self.on_error()
            log.warning("reconcile %s failed (next relist retries): %s", p.key, exc)
        except Exception as exc:  # one bad object must not stop every other server's reconcile
            self.on_error()
            log.exception("reconcile %s failed (next relist retries)", p.key)
            self.remove(p.key)
            message = f"{exc.__class__.__name__}: {exc}"[:500]
            try:
                self._write_status(obj, p, "", [Condition(READY, "False", "ReconcileError", message),
                                                Condition(GATEWAY_READY, "Unknown", "ReconcileError", message),
                                                Condition(POLICY_DELIVERED, "Unknown", "ReconcileError", message)])
            except KubeError:
                pass  # the relist retries the whole reconcile

    def _reconcile(self, obj: Obj, p: Plan, resync: bool) -> None:
        if (obj.get("metadata") or {}).get("deletionTimestamp"):
            self.remove(p.key)  # being deleted (a finalizer holds it): it serves no more
            return
        owner = self.route_owner.get(p.route)
        if p.problem is None and (p.route in self._static_routes or (owner is not None and owner != p.key)):
            p = Plan(p.namespace, p.name, p.generation, problem=(
                "RouteConflict", f"/{p.route}/mcp is already served by {owner or 'a stack server'}"))  # fmt: skip
        if p.problem is not None:
            self.remove(p.key)
            reason, message = p.problem
            self._write_status(obj, p, "", [
                Condition(READY, "False", reason, message),
                Condition(GATEWAY_READY, "False", reason, message),
                Condition(POLICY_DELIVERED, "Unknown", reason, "no gateway runs for this server locally"),
            ])  # fmt: skip
            return
        policy = self._policy(p, resync)
        env = self._sidecar_env(p)
        sidecar = self.pool.running.get(p.key)
        problem: str | None = None
        if sidecar is None or not sidecar.alive() or sidecar.fingerprint != fingerprint(env):
            self._drop_route(p.key)
            sidecar = self.pool.start(p.key, env)
            problem = self.pool.wait_ready(sidecar, self.s.sidecar_ready_seconds)
        if problem is None:
            gateway = Condition(GATEWAY_READY, "True", "SidecarReady",
                                f"pid {sidecar.process.pid}, {sidecar.url} -> {p.upstream}")
            self._set_route(p.route, p.key, sidecar.url)
        else:
            gateway = Condition(GATEWAY_READY, "False", "SidecarNotReady", problem)
            self.pool.stop(p.key)
            self._drop_route(p.key)
        if policy.status != "True":
            ready = Condition(READY, "False", policy.reason, policy.message)
        elif gateway.status != "True":
            ready = Condition(READY, "False", gateway.reason, gateway.message)
        elif (unreachable := self.probe(p.upstream)) is not None:
            # Routed all the same: calls get the gateway's 502 until the server answers, and the next
            # relist reports it Ready without anyone re-registering it.
            ready = Condition(READY, "False", "UpstreamUnreachable", f"{p.upstream}: {unreachable}")
        else:
            ready = Condition(READY, "True", "Serving", f"governed endpoint {self._url(p)}")
        self._write_status(obj, p, self._url(p), [ready, gateway, policy])

    def _policy(self, p: Plan, resync: bool) -> Condition:
        known = self.revisions.get(p.key)
        if known is not None and known[0] == p.generation and not resync:
            return Condition(POLICY_DELIVERED, "True", "PolicyWritten", f"revision {known[1]}")
        try:
            revision = self.deliver(self.kube, p.namespace, p.name, self.s.policy_dir)
        except PolicyError as exc:
            self.revisions.pop(p.key, None)
            return Condition(POLICY_DELIVERED, "False", "PolicyInvalid", f"previous policy kept: {exc}")
        self.revisions[p.key] = (p.generation, revision)
        return Condition(POLICY_DELIVERED, "True", "PolicyWritten", f"revision {revision}")

    def _sidecar_env(self, p: Plan) -> dict[str, str]:
        team = self.kube.namespace_team(p.namespace) or self.s.default_team
        env = {
            "UPSTREAM_URL": p.upstream,
            "POLICY_FILE": str(self.s.policy_dir / p.namespace / f"{p.name}.json"),
            "MCP_SERVER_NAME": p.name,
            "MCP_SERVER_NAMESPACE": p.namespace,
            "MCP_CLUSTER_NAME": "local",
            "AUDIT_SPOOL_DIR": str(self.s.data_dir / "spool" / p.namespace / p.name),
            "OTEL_SERVICE_NAME": f"{p.name}-gateway",
            "ANALYTICS_SOURCE": f"{p.name}-gateway",
            "POLICY_POLL_INTERVAL": "0.2",
            LOCAL_DEV_FLAG: "1",
        }
        if self.s.ingest_url:
            env["ANALYTICS_INGEST_URL"] = self.s.ingest_url + "/events"
            env["ANALYTICS_API_KEY"] = issue(self.s.gateway_secret, GatewayBinding(p.namespace, p.name, team))
        if self.s.platform_issuer:
            env["PLATFORM_TOKEN_ISSUER"] = self.s.platform_issuer
            env["PLATFORM_JWKS_URL"] = self.s.platform_jwks_url
        return env

    def _url(self, p: Plan) -> str:
        return f"{self.s.public_base_url}/{p.route}/mcp"

    # ----- routes, removal, status -----------------------------------------------------------

    def _set_route(self, route: str, key: str, url: str) -> None:
        if self.routes.get(route) == url and self.route_owner.get(route) == key:
            return
        for old in [r for r, k in self.route_owner.items() if k == key and r != route]:  # its public path moved
            self.routes.pop(old, None)
            self.route_owner.pop(old, None)
        self.routes[route] = url
        self.route_owner[route] = key
        write_routes(self.s.routes_file, self.routes)

    def _drop_route(self, key: str) -> None:
        gone = [r for r, k in self.route_owner.items() if k == key]
        for route in gone:
            self.routes.pop(route, None)
            self.route_owner.pop(route, None)
        if gone:
            write_routes(self.s.routes_file, self.routes)

    def remove(self, key: str) -> None:
        """Route first, then the process: nothing is forwarded to a stopping sidecar."""
        self._drop_route(key)
        self.pool.stop(key)
        self.revisions.pop(key, None)

    def _write_status(self, obj: Obj, p: Plan, url: str, conditions: list[Condition]) -> None:
        revision = self.revisions.get(p.key, (0, ""))[1]
        desired = build_status(obj.get("status"), generation=p.generation, url=url, revision=revision,
                               conditions=conditions)  # fmt: skip
        if same_status(obj.get("status"), desired):
            return
        try:
            self.kube.servers.patch_status(p.namespace, p.name, desired)
        except NotFound:
            self.remove(p.key)  # deleted meanwhile; its DELETED event may already be behind us

    def shutdown(self) -> None:
        """Stop every sidecar and empty the route table."""
        self.routes.clear()
        self.route_owner.clear()
        write_routes(self.s.routes_file, {})
        self.pool.stop_all()
