"""Render a server's policy from the CRDs and deliver it (ConfigMap + local file when configured).

Shared by PolicyReconcile (every server, on a schedule) and SessionExpiry (one server, when a
session expires or is revoked).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from temporalio import activity

from mcp_sentinel.gateway_credentials import team_of_namespace
from workflows.cluster import SENTINEL_VERSION, AlreadyExists, Cluster, Obj, Ref

log = logging.getLogger(__name__)

POLICY_KEY = "policy.json"


class Renderer(Protocol):
    """`mcp_sentinel.policy.render_policy`: the full document text (raises ValueError on an invalid render)."""

    def __call__(
        self,
        server: Obj,
        grants: list[Obj],
        sessions: list[Obj],
        *,
        cluster: str,
        existing_text: str,
        now: datetime,
        namespace_team: str | None,
    ) -> Any:
        """Render; returns the policy text (a str; objects with `.text` or a dict are accepted too)."""


def default_renderer() -> Renderer:
    """The product renderer, imported lazily so the worker starts even while it is being deployed."""
    from mcp_sentinel.policy import render_policy  # type: ignore[attr-defined,unused-ignore]

    return render_policy  # type: ignore[no-any-return,unused-ignore]


def as_text(rendered: Any) -> str:
    """Accept the renderer's text in the shapes it may reasonably return."""
    if isinstance(rendered, str):
        return rendered
    text = getattr(rendered, "text", None)
    if isinstance(text, str):
        return text
    if isinstance(rendered, dict):
        import json

        return json.dumps(rendered, indent=2) + "\n"
    raise TypeError(f"renderer returned {type(rendered).__name__}, expected the policy text")


def targets(obj: Obj, namespace: str, server: str) -> bool:
    """Does a grant/session reference this server (serverRef.namespace defaults to its own namespace)?"""
    ref = (obj.get("spec") or {}).get("serverRef") or {}
    ref_ns = ref.get("namespace") or obj["metadata"].get("namespace", "")
    return bool(ref.get("name") == server and ref_ns == namespace)


@dataclass
class RenderRequest:
    """Which server to re-render and why (`trigger` labels the metric and log line)."""

    namespace: str
    server: str
    trigger: str = "reconcile"


@dataclass
class RenderOutcome:
    """`changed` when the delivered policy differed from what was there (drift or a real change)."""

    namespace: str
    server: str
    changed: bool = False
    error: str = ""


@dataclass
class ServerRef:
    """One MCPServer."""

    namespace: str
    name: str


class PolicyActivities:
    """Render-and-deliver activities bound to a cluster, a renderer and an optional local output folder."""

    def __init__(
        self,
        cluster: Cluster,
        *,
        renderer: Renderer | None = None,
        output_dir: Path | None = None,
        cluster_name: str = "local",
    ) -> None:
        self.cluster = cluster
        self._renderer = renderer
        self.output_dir = output_dir
        self.cluster_name = cluster_name

    def _render_fn(self) -> Renderer:
        if self._renderer is None:
            self._renderer = default_renderer()
        return self._renderer

    @activity.defn(name="policy.list_servers")
    def list_servers(self) -> list[ServerRef]:
        """Every MCPServer in the cluster."""
        items = self.cluster.list(SENTINEL_VERSION, "MCPServer", None)
        return sorted(
            (ServerRef(str(s["metadata"].get("namespace", "")), str(s["metadata"]["name"])) for s in items),
            key=lambda r: (r.namespace, r.name),
        )

    @activity.defn(name="policy.render_server")
    def render_server(self, req: RenderRequest) -> RenderOutcome:
        """Render from the CRDs; write the ConfigMap and the local file only when they differ."""
        out = RenderOutcome(req.namespace, req.server)
        server = self.cluster.get(Ref(SENTINEL_VERSION, "MCPServer", req.namespace, req.server))
        if server is None:
            out.error = f"MCPServer {req.namespace}/{req.server} not found"
            return out
        grants = [g for g in self.cluster.list(SENTINEL_VERSION, "MCPAccessGrant") if targets(g, *_key(req))]
        sessions = [s for s in self.cluster.list(SENTINEL_VERSION, "MCPAgentSession") if targets(s, *_key(req))]
        cm_ref = Ref("v1", "ConfigMap", req.namespace, f"{req.server}-gateway-policy")
        cm = self.cluster.get(cm_ref)
        existing = str(((cm or {}).get("data") or {}).get(POLICY_KEY, ""))
        # The namespace's team label (set by team provisioning), never the free-form spec.teamID.
        ns_obj = self.cluster.get(Ref("v1", "Namespace", "", req.namespace))
        team = (team_of_namespace(ns_obj) or None) if ns_obj is not None else None
        try:
            text = as_text(
                self._render_fn()(
                    server, grants, sessions, cluster=self.cluster_name, existing_text=existing, now=datetime.now(UTC),
                    namespace_team=team,
                )
            )
        except ValueError as exc:
            # An invalid render keeps the last good policy in place (upstream §2.1).
            out.error = f"invalid policy render: {exc}"
            return out
        if text != existing:
            self._write_configmap(cm_ref, cm, text, server)
            out.changed = True
        if self.output_dir is not None and self._write_file(req, text):
            out.changed = True
        if out.changed:
            log.info("policy %s/%s re-rendered (trigger=%s)", req.namespace, req.server, req.trigger)
            _count("sentinel_policy_rerenders", "Policies whose delivered text changed when re-rendered", req)
        return out

    def _write_configmap(self, ref: Ref, current: Obj | None, text: str, server: Obj) -> None:
        if current is not None:
            self.cluster.merge_patch(ref, {"data": {POLICY_KEY: text}})
            return
        meta: Obj = {
            "name": ref.name,
            "namespace": ref.namespace,
            "labels": {"app": ref.name.removesuffix("-gateway-policy"), "app.kubernetes.io/managed-by": "mcp-sentinel"},
        }
        uid = server["metadata"].get("uid")
        if uid:
            meta["ownerReferences"] = [
                {
                    "apiVersion": SENTINEL_VERSION,
                    "kind": "MCPServer",
                    "name": server["metadata"]["name"],
                    "uid": uid,
                    "controller": True,
                }
            ]
        try:
            self.cluster.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {POLICY_KEY: text}})
        except AlreadyExists:
            self.cluster.merge_patch(ref, {"data": {POLICY_KEY: text}})

    def _write_file(self, req: RenderRequest, text: str) -> bool:
        assert self.output_dir is not None
        path = self.output_dir / req.namespace / f"{req.server}.json"
        try:
            if path.read_text() == text:
                return False
        except FileNotFoundError:
            pass
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(text)
        os.replace(tmp, path)  # the sidecar polls this file: never let it see a half-written policy
        return True

    @activity.defn(name="policy.report_drift")
    def report_drift(self, drifted: list[ServerRef]) -> None:
        """Log and count drift found by a reconcile pass."""
        for ref in drifted:
            log.warning("policy drift repaired for %s/%s", ref.namespace, ref.name)
            _count(
                "sentinel_policy_drift",
                "Servers whose policy drifted from the CRDs",
                RenderRequest(ref.namespace, ref.name),
            )
        if not drifted:
            log.info("policy reconcile: no drift")


def _key(req: RenderRequest) -> tuple[str, str]:
    return req.namespace, req.server


def _count(name: str, description: str, req: RenderRequest) -> None:
    try:
        meter = activity.metric_meter()
    except RuntimeError:
        return  # called outside an activity (unit use)
    meter.create_counter(name, description).add(1, {"namespace": req.namespace, "server": req.server})
