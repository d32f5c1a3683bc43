"""Render one server's gateway policy and deliver it whenever its grants or sessions change.

Delivery targets (upstream §2.1): the `<server>-gateway-policy` ConfigMap (what a pod's sidecar
mounts) and, in local mode (`POLICY_OUTPUT_DIR`), `<dir>/<namespace>/<server>.json`, written
atomically because the local sidecar polls that file. Rendering is byte-stable: an unchanged
document keeps its text (and `generated_at`), so nothing is rewritten and no sidecar reloads.

The grant/session set matches the PolicyReconcile workflow's (every object whose effective
serverRef is this server), so the API and the reconcile schedule never fight over the text.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mcp_sentinel.kube.errors import NotFound
from mcp_sentinel.kube.resources import SentinelKube
from mcp_sentinel.policy import parse_document, render_policy

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PolicySync:
    """What one sync did: the active revision and whether any delivered text changed."""

    namespace: str
    server: str
    revision: str = ""
    changed: bool = False
    removed: bool = False

    def to_json(self) -> dict[str, Any]:
        """JSON for API responses."""
        out: dict[str, Any] = {"revision": self.revision, "changed": self.changed}
        if self.removed:
            out["removed"] = True
        return out


def targets(obj: dict[str, Any], namespace: str, server: str) -> bool:
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


def _write_file(path: Path, text: str) -> bool:
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


def sync_server_policy(
    kube: SentinelKube,
    namespace: str,
    server: str,
    *,
    output_dir: Path | None = None,
    cluster: str = "local",
) -> PolicySync:
    """Render and deliver `namespace/server`'s policy (blocking; call from a thread).

    Raises PolicyError (a ValueError) when the render is invalid: the old policy stays active.
    A server without an enabled gateway has its ConfigMap removed (there is no sidecar to feed).
    """
    try:
        server_obj = kube.servers.get(namespace, server)
    except NotFound:
        return PolicySync(namespace, server)
    gateway = ((server_obj.get("spec") or {}).get("gateway") or {}).get("enabled") is True
    if not gateway:
        removed = kube.delete_policy_configmap(namespace, server)
        return PolicySync(namespace, server, removed=removed)
    grants = [g for g in kube.grants.list(None) if targets(g, namespace, server)]
    sessions = [s for s in kube.sessions.list(None) if targets(s, namespace, server)]
    existing = kube.read_policy_configmap(namespace, server)
    # The namespace's team label, not the free-form spec.teamID, says whose server this is.
    team = kube.namespace_team(namespace)
    text = render_policy(server_obj, grants, sessions, cluster=cluster, existing_text=existing, now=time.time(),
                         namespace_team=team)
    changed = False
    if text != existing:
        kube.write_policy_configmap(namespace, server, text, owner=server_obj)
        changed = True
    if output_dir is not None:
        changed = _write_file(policy_path(output_dir, namespace, server), text) or changed
    revision = parse_document(text).revision
    if changed:
        log.info("policy %s/%s now at %s", namespace, server, revision)
    return PolicySync(namespace, server, revision, changed)
