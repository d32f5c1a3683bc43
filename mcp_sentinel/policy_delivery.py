"""Render one server's gateway policy from the CRDs and deliver it: the only implementation.

Used by the API (after a grant/session/server change), the PolicyReconcile schedule, session
expiry and the ServerLifecycle workflow, so they can never disagree about targets or text.

Delivery targets (upstream §2.1): the `<server>-gateway-policy` ConfigMap, key `policy.json`
(what a pod's sidecar mounts), and in local mode (`output_dir`) `<dir>/<namespace>/<server>.json`,
written atomically because the local sidecar polls that file. Rendering is byte-stable: an
unchanged document keeps its text (and `generated_at`), so nothing is rewritten and no sidecar
reloads.

Gateway disabled (`spec.gateway.enabled` not true): there is no sidecar to feed, so both targets
are REMOVED rather than written. A stale policy left behind would look authoritative (to the
policy view, to a later re-enabled gateway before its first render) while nothing enforces it;
re-enabling renders a fresh one. See docs/decisions.md (server lifecycle).
"""

from __future__ import annotations

import copy
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mcp_sentinel.gateway_credentials import team_of_namespace
from mcp_sentinel.kube.errors import AlreadyExists, Conflict
from mcp_sentinel.kube.objects import Cluster, Obj, Ref
from mcp_sentinel.kube.resources import API_VERSION, MANAGED_BY, POLICY_KEY, owner_reference, policy_configmap_name
from mcp_sentinel.policy import parse_document, render_policy

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PolicySync:
    """What one delivery did: the active revision, whether any delivered text changed, or why not."""

    namespace: str
    server: str
    revision: str = ""
    changed: bool = False
    removed: bool = False
    found: bool = True
    gateway: bool = True

    def to_json(self) -> dict[str, Any]:
        """JSON for API responses."""
        out: dict[str, Any] = {"revision": self.revision, "changed": self.changed}
        if self.removed:
            out["removed"] = True
        return out


def gateway_enabled(server: Mapping[str, Any]) -> bool:
    """Is the gateway sidecar on for this MCPServer (`spec.gateway.enabled: true`, nothing else)?"""
    return ((server.get("spec") or {}).get("gateway") or {}).get("enabled") is True


def targets(obj: Mapping[str, Any], namespace: str, server: str) -> bool:
    """Does this grant/session reference the server (serverRef.namespace defaults to its own)?"""
    ref = (obj.get("spec") or {}).get("serverRef") or {}
    own = (obj.get("metadata") or {}).get("namespace", "")
    return bool(ref.get("name") == server and (ref.get("namespace") or own) == namespace)


def policy_path(output_dir: Path, namespace: str, server: str) -> Path:
    """`<dir>/<namespace>/<server>.json`; ValueError if the names would escape `output_dir`."""
    for part in (namespace, server):
        if not part or "/" in part or "\\" in part or part in (".", "..") or "\x00" in part:
            raise ValueError(f"unsafe policy path component {part!r}")
    return output_dir / namespace / f"{server}.json"


def write_policy_file(path: Path, text: str) -> bool:
    """Atomically replace `path` with `text`; False (and no write) when it already holds it."""
    try:
        if path.read_text(encoding="utf-8") == text:
            return False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)  # the sidecar must never read a half-written policy
    return True


def _cm_ref(namespace: str, server: str) -> Ref:
    return Ref("v1", "ConfigMap", namespace, policy_configmap_name(server))


def read_policy_configmap(cluster: Cluster, namespace: str, server: str) -> str | None:
    """The delivered policy text of a server, or None when no ConfigMap/key exists."""
    cm = cluster.get(_cm_ref(namespace, server))
    text = ((cm or {}).get("data") or {}).get(POLICY_KEY)
    return str(text) if text is not None else None


def write_policy_configmap(
    cluster: Cluster, namespace: str, server: str, text: str, owner: Mapping[str, Any] | None = None
) -> Obj:
    """Create or replace `<server>-gateway-policy` with `policy.json` = text (upstream §2.1).

    Labels `app=<server>`, `app.kubernetes.io/managed-by=mcp-sentinel`; a controller owner
    reference to the MCPServer `owner` so deleting the server removes its policy. An unchanged
    ConfigMap is not rewritten (no resourceVersion churn, no sidecar reload); a concurrent writer
    is retried after a re-read (resourceVersion-guarded replace).
    """
    ref = _cm_ref(namespace, server)
    labels = {"app": server, "app.kubernetes.io/managed-by": MANAGED_BY}
    meta: Obj = {"name": ref.name, "namespace": namespace, "labels": labels}
    if owner is not None:
        meta["ownerReferences"] = [owner_reference(owner)]
    body: Obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {POLICY_KEY: text}}
    for _ in range(5):
        current = cluster.get(ref)
        if current is None:
            try:
                return cluster.create(copy.deepcopy(body))
            except AlreadyExists:
                continue  # created concurrently: re-read and replace
        cur_meta = current.get("metadata") or {}
        if (
            current.get("data") == body["data"]
            and cur_meta.get("labels") == meta["labels"]
            and cur_meta.get("ownerReferences") == meta.get("ownerReferences")
        ):
            return current
        desired = copy.deepcopy(body)
        desired["metadata"]["resourceVersion"] = cur_meta.get("resourceVersion")
        try:
            return cluster.replace(desired)
        except Conflict:
            continue
    raise Conflict(f"configmap {namespace}/{ref.name} kept changing while writing the policy", status=409)


def delete_policy_configmap(cluster: Cluster, namespace: str, server: str) -> bool:
    """Remove a server's policy ConfigMap; False when it did not exist."""
    return cluster.delete(_cm_ref(namespace, server))


def deliver_policy(
    cluster: Cluster,
    namespace: str,
    server: str,
    *,
    output_dir: Path | None = None,
    cluster_name: str = "local",
    server_obj: Obj | None = None,
) -> PolicySync:
    """Render and deliver `namespace/server`'s policy (blocking; call from a thread).

    Raises PolicyError (a ValueError) when the render is invalid: the old policy stays active.
    A missing server yields `found=False` and touches nothing; a gateway-disabled one has both
    targets removed (module docstring). `server_obj` saves a read when the caller has it.
    """
    path = policy_path(output_dir, namespace, server) if output_dir is not None else None
    if server_obj is None:
        server_obj = cluster.get(Ref(API_VERSION, "MCPServer", namespace, server))
    if server_obj is None:
        return PolicySync(namespace, server, found=False)
    if not gateway_enabled(server_obj):
        removed = delete_policy_configmap(cluster, namespace, server)
        if path is not None and path.exists():
            path.unlink()
            removed = True
        return PolicySync(namespace, server, removed=removed, gateway=False)
    grants = [g for g in cluster.list(API_VERSION, "MCPAccessGrant") if targets(g, namespace, server)]
    sessions = [s for s in cluster.list(API_VERSION, "MCPAgentSession") if targets(s, namespace, server)]
    existing = read_policy_configmap(cluster, namespace, server)
    # The namespace's team label (set by team provisioning), never the free-form spec.teamID.
    ns_obj = cluster.get(Ref("v1", "Namespace", "", namespace))
    team = (team_of_namespace(ns_obj) or None) if ns_obj is not None else None
    text = render_policy(
        server_obj, grants, sessions, cluster=cluster_name, existing_text=existing, now=time.time(), namespace_team=team
    )
    changed = False
    if text != existing:
        write_policy_configmap(cluster, namespace, server, text, owner=server_obj)
        changed = True
    if path is not None:
        changed = write_policy_file(path, text) or changed
    revision = parse_document(text).revision
    if changed:
        log.info("policy %s/%s now at %s", namespace, server, revision)
    return PolicySync(namespace, server, revision, changed)
