"""ServerLifecycle activities: apply what runs an MCPServer, watch its rollout, roll back, report status.

Every activity is idempotent (level-triggered: it reads the MCPServer and the live objects and
converges), so Temporal may retry any of them. Rendering is `mcp_sentinel.kube.server_render`;
the policy ConfigMap is `mcp_sentinel.policy_delivery`, the same code the API and the policy
reconcile use.

The Deployment carries three annotations the rollout logic needs:
* `mcp-sentinel.io/spec-hash`: digest of the spec as rendered (a changed server re-rolls);
* `mcp-sentinel.io/live-spec-hash`: digest of the spec as the API server stored it after our
  write, so a hand edit (drift) is noticed even though the API server adds defaults;
* `mcp-sentinel.io/last-good`: the spec of the last rollout that became available, restored
  when a later rollout fails; `mcp-sentinel.io/failed-spec-hash` marks the failed one so the
  periodic reconcile does not retry it until the MCPServer changes again.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from mcp_sentinel.kube.errors import Conflict, Invalid
from mcp_sentinel.kube.objects import Cluster, Obj, Ref
from mcp_sentinel.kube.resources import API_VERSION
from mcp_sentinel.kube.server_render import (
    SPEC_HASH_ANNOTATION,
    InvalidServer,
    RenderSettings,
    public_url,
    render_deployment,
    render_ingress,
    render_service,
    selector,
    spec_hash,
)
from mcp_sentinel.policy_delivery import delete_policy_configmap, deliver_policy, policy_path

log = logging.getLogger(__name__)

LIVE_HASH_ANNOTATION = "mcp-sentinel.io/live-spec-hash"
LAST_GOOD_ANNOTATION = "mcp-sentinel.io/last-good"
FAILED_HASH_ANNOTATION = "mcp-sentinel.io/failed-spec-hash"
# Kinds rendered per server, in cleanup order (the policy ConfigMap is owned and labelled too).
OWNED_KINDS = (("networking.k8s.io/v1", "Ingress"), ("apps/v1", "Deployment"), ("v1", "Service"))


@dataclass
class ServerKey:
    """One MCPServer."""

    namespace: str
    name: str


@dataclass
class Applied:
    """What `apply` found and did."""

    exists: bool = True
    generation: int = 0
    invalid: str = ""
    url: str = ""
    gateway: bool = False
    policy_revision: str = ""
    policy_error: str = ""
    spec_hash: str = ""
    rolled: bool = False  # the Deployment spec was (re)written: a rollout to wait for
    held_back: bool = False  # the desired spec failed before; not retried until the server changes
    progress_deadline_seconds: int = 300


@dataclass
class Rollout:
    """Where the Deployment's rollout stands: `ready`, `progressing`, `failed` or `missing`."""

    phase: str
    message: str = ""
    available: int = 0
    replicas: int = 0


@dataclass
class RolledBack:
    """What `roll_back` restored (`restored` False when there was no earlier good spec)."""

    restored: bool
    message: str


@dataclass
class Condition:
    """One status condition (`status` is "True", "False" or "Unknown")."""

    type: str
    status: str
    reason: str
    message: str = ""


@dataclass
class StatusReport:
    """The MCPServer status the workflow decided on (timestamps are added when written)."""

    key: ServerKey
    observed_generation: int
    url: str
    policy_revision: str
    conditions: list[Condition] = field(default_factory=list)


def _dep_ref(key: ServerKey) -> Ref:
    return Ref("apps/v1", "Deployment", key.namespace, key.name)


def _annotations(obj: Obj | None) -> dict[str, str]:
    return dict(((obj or {}).get("metadata") or {}).get("annotations") or {})


def _subset(want: Any, have: Any) -> bool:
    """Does `have` carry everything `want` says (the API server may add defaults we did not write)?"""
    if isinstance(want, dict):
        return isinstance(have, dict) and all(_subset(v, have.get(k)) for k, v in want.items())
    if isinstance(want, list):
        return isinstance(have, list) and len(want) == len(have) and all(map(_subset, want, have))
    return bool(want == have)


def _non_retryable(exc: Exception, kind: str) -> ApplicationError:
    return ApplicationError(str(exc), type=kind, non_retryable=True)


class LifecycleActivities:
    """Activities bound to a cluster, the render settings and the local policy folder (if any)."""

    def __init__(
        self,
        cluster: Cluster,
        settings: RenderSettings | None = None,
        *,
        output_dir: Path | None = None,
    ) -> None:
        self.cluster = cluster
        self.settings = settings or RenderSettings()
        self.output_dir = output_dir

    # ----- apply ---------------------------------------------------------------------------

    @activity.defn(name="lifecycle.apply")
    def apply(self, key: ServerKey) -> Applied:
        """Converge the policy ConfigMap, Service, Ingress and Deployment on the MCPServer's spec."""
        server = self.cluster.get(Ref(API_VERSION, "MCPServer", key.namespace, key.name))
        if server is None or (server.get("metadata") or {}).get("deletionTimestamp"):
            return Applied(exists=False)
        out = Applied(
            generation=int(server["metadata"].get("generation") or 0),
            url=public_url(self.settings.public_base_url, server),
            progress_deadline_seconds=self.settings.progress_deadline_seconds,
        )
        try:
            deployment = render_deployment(server, self.settings)
        except InvalidServer as exc:
            out.invalid = str(exc)
            return out
        try:
            self._converge(server, key, deployment, out)
        except Invalid as exc:
            # The API server refuses what we render (e.g. a name too long for a label): retrying cannot help.
            raise _non_retryable(exc, "Invalid") from exc
        return out

    def _converge(self, server: Obj, key: ServerKey, deployment: Obj, out: Applied) -> None:
        try:
            sync = deliver_policy(
                self.cluster, key.namespace, key.name, output_dir=self.output_dir,
                cluster_name=self.settings.cluster_name, server_obj=server,
            )
            out.gateway, out.policy_revision = sync.gateway, sync.revision
        except ValueError as exc:  # PolicyError: the last good policy stays delivered
            out.gateway, out.policy_error = True, str(exc)
        self._put(render_service(server))
        ingress = render_ingress(server, self.settings)
        if ingress is None:
            # Not (or no longer) public: a route left from an earlier auth mode must go.
            self.cluster.delete(Ref("networking.k8s.io/v1", "Ingress", key.namespace, key.name))
        else:
            self._put(ingress)
        out.spec_hash = _annotations(deployment)[SPEC_HASH_ANNOTATION]
        out.rolled, out.held_back = self._put_deployment(deployment)

    def _put(self, desired: Obj) -> Obj:
        """Create, or replace when the rendered fields differ (labels, owner, annotations, spec)."""
        ref = Ref.of(desired)
        for _ in range(5):
            current = self.cluster.get(ref)
            if current is None:
                return self.cluster.create(desired)
            meta = current.get("metadata") or {}
            want = desired["metadata"]
            if (
                all(_subset(v, current.get(k)) for k, v in desired.items() if k not in ("metadata", "status"))
                and all(meta.get(k) == want.get(k) for k in ("labels", "ownerReferences"))
                and all(_annotations(current).get(k) == v for k, v in (want.get("annotations") or {}).items())
            ):
                return current
            notes = {**_annotations(current), **(want.get("annotations") or {})}
            rv = meta.get("resourceVersion")
            body = {**desired, "metadata": {**want, "resourceVersion": rv, "annotations": notes}}
            if desired["kind"] == "Service" and current.get("spec", {}).get("clusterIP"):
                body["spec"] = {**desired["spec"], "clusterIP": current["spec"]["clusterIP"]}  # immutable field
            try:
                return self.cluster.replace(body)
            except Conflict:
                continue
        raise Conflict(f"{ref} kept changing while it was applied", status=409)

    def _put_deployment(self, desired: Obj) -> tuple[bool, bool]:
        """(rolled, held_back): write the Deployment when its rendered spec changed or drifted."""
        ref = Ref.of(desired)
        want = _annotations(desired)[SPEC_HASH_ANNOTATION]
        for _ in range(5):
            current = self.cluster.get(ref)
            if current is None:
                stored = self.cluster.create(desired)
                self._record_live_hash(stored)
                return True, False
            notes = _annotations(current)
            drifted = notes.get(LIVE_HASH_ANNOTATION) != spec_hash(current.get("spec") or {})
            if notes.get(SPEC_HASH_ANNOTATION) == want and not drifted:
                self._put({**desired, "spec": current["spec"]})  # labels/owner only, never the spec
                return False, False
            if notes.get(FAILED_HASH_ANNOTATION) == want and not drifted:
                return False, True  # this exact spec failed and was rolled back: wait for a new one
            body = {
                **desired,
                "metadata": {
                    **desired["metadata"],
                    "resourceVersion": current["metadata"].get("resourceVersion"),
                    "annotations": {**notes, **_annotations(desired)},
                },
            }
            try:
                stored = self.cluster.replace(body)
            except Conflict:
                continue
            self._record_live_hash(stored)
            return True, False
        raise Conflict(f"{ref} kept changing while it was applied", status=409)

    def _record_live_hash(self, stored: Obj) -> None:
        # A metadata-only patch: the generation (and so the rollout) is unaffected.
        self.cluster.merge_patch(
            Ref.of(stored), {"metadata": {"annotations": {LIVE_HASH_ANNOTATION: spec_hash(stored.get("spec") or {})}}}
        )

    # ----- rollout -------------------------------------------------------------------------

    @activity.defn(name="lifecycle.rollout_state")
    def rollout_state(self, key: ServerKey) -> Rollout:
        """Ready when the controller saw the latest generation and every replica is updated and available."""
        dep = self.cluster.get(_dep_ref(key))
        if dep is None:
            return Rollout("missing", "the Deployment does not exist")
        spec, status = dep.get("spec") or {}, dep.get("status") or {}
        replicas = int(spec.get("replicas", 1))
        available = int(status.get("availableReplicas") or 0)
        updated = int(status.get("updatedReplicas") or 0)
        for cond in status.get("conditions") or []:
            if cond.get("type") == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded":
                return Rollout("failed", str(cond.get("message") or "progress deadline exceeded"), available, replicas)
        seen = int(status.get("observedGeneration") or 0) >= int(dep["metadata"].get("generation") or 0)
        if seen and updated >= replicas and available >= replicas:
            return Rollout("ready", f"{available}/{replicas} replicas available", available, replicas)
        return Rollout("progressing", f"{available}/{replicas} replicas available", available, replicas)

    @activity.defn(name="lifecycle.mark_good")
    def mark_good(self, key: ServerKey) -> bool:
        """Save the live spec as the last good revision; True when that changed the annotation."""
        dep = self.cluster.get(_dep_ref(key))
        if dep is None:
            return False
        good = json.dumps({"hash": _annotations(dep).get(SPEC_HASH_ANNOTATION, ""), "spec": dep.get("spec") or {}},
                          sort_keys=True, separators=(",", ":"))
        if _annotations(dep).get(LAST_GOOD_ANNOTATION) == good:
            return False
        self.cluster.merge_patch(_dep_ref(key), {"metadata": {"annotations": {LAST_GOOD_ANNOTATION: good,
                                                                              FAILED_HASH_ANNOTATION: None}}})
        return True

    @activity.defn(name="lifecycle.roll_back")
    def roll_back(self, key: ServerKey) -> RolledBack:
        """Compensation of a failed rollout: restore the last good spec and mark the failed one."""
        out = self._roll_back(key)
        log.warning("rollout of %s/%s failed: %s", key.namespace, key.name, out.message)
        _count("sentinel_server_rollbacks", "Failed server rollouts (restored: a last good spec was put back)",
               key, restored=str(out.restored).lower())
        return out

    def _roll_back(self, key: ServerKey) -> RolledBack:
        for _ in range(5):
            dep = self.cluster.get(_dep_ref(key))
            if dep is None:
                return RolledBack(False, "the Deployment is gone")
            notes = _annotations(dep)
            failed = notes.get(SPEC_HASH_ANNOTATION, "")
            raw = notes.get(LAST_GOOD_ANNOTATION)
            if not raw:
                self.cluster.merge_patch(_dep_ref(key), {"metadata": {"annotations": {FAILED_HASH_ANNOTATION: failed}}})
                return RolledBack(False, "no earlier revision became available; the failed one stays")
            good: dict[str, Any] = json.loads(raw)
            if good.get("hash") == failed:
                return RolledBack(False, "the failing revision is the last good one (it was available before)")
            body = {
                **dep,
                "metadata": {
                    **dep["metadata"],
                    "annotations": {**notes, SPEC_HASH_ANNOTATION: str(good.get("hash", "")),
                                    FAILED_HASH_ANNOTATION: failed},
                },
                "spec": good["spec"],
            }
            body.pop("status", None)
            try:
                stored = self.cluster.replace(body)
            except Conflict:
                continue
            self._record_live_hash(stored)
            return RolledBack(True, f"rolled back to revision {good.get('hash')}")
        raise Conflict(f"Deployment {key.namespace}/{key.name} kept changing during the rollback", status=409)

    # ----- status and cleanup --------------------------------------------------------------

    @activity.defn(name="lifecycle.report")
    def report(self, report: StatusReport) -> bool:
        """Write the status subresource; lastTransitionTime moves only when a condition's status does."""
        ref = Ref(API_VERSION, "MCPServer", report.key.namespace, report.key.name)
        server = self.cluster.get(ref)
        if server is None:
            return False
        old = {c.get("type"): c for c in ((server.get("status") or {}).get("conditions") or [])}
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        conditions = []
        for c in report.conditions:
            prev = old.get(c.type) or {}
            since = prev.get("lastTransitionTime") if prev.get("status") == c.status else None
            conditions.append({"type": c.type, "status": c.status, "reason": c.reason, "message": c.message,
                               "lastTransitionTime": since or now})
        status = {
            # 0 = the pass could not read the generation (apply failed): keep what was observed before.
            "observedGeneration": report.observed_generation
            or int((server.get("status") or {}).get("observedGeneration") or 0),
            "url": report.url,
            "policyRevision": report.policy_revision,
            "conditions": conditions,
        }
        self.cluster.merge_patch(ref, {"status": status}, status=True)
        return True

    @activity.defn(name="lifecycle.clean_up")
    def clean_up(self, key: ServerKey) -> int:
        """Delete what was rendered for a deleted server (owner references make real GC do the same)."""
        removed = 0
        for api_version, kind in OWNED_KINDS:
            for obj in self.cluster.list(api_version, kind, key.namespace, label_selector=selector(key.name)):
                removed += self.cluster.delete(Ref.of(obj))
        removed += delete_policy_configmap(self.cluster, key.namespace, key.name)
        if self.output_dir is not None:
            path = policy_path(self.output_dir, key.namespace, key.name)
            if path.exists():
                path.unlink()
                removed += 1
        return removed

    @activity.defn(name="lifecycle.list_servers")
    def list_servers(self) -> list[ServerKey]:
        """Every MCPServer (the periodic reconcile's work list)."""
        items = self.cluster.list(API_VERSION, "MCPServer", None)
        return sorted(
            (ServerKey(str(s["metadata"].get("namespace", "")), str(s["metadata"]["name"])) for s in items),
            key=lambda k: (k.namespace, k.name),
        )


def _count(name: str, description: str, key: ServerKey, **labels: str) -> None:
    try:
        meter = activity.metric_meter()
    except RuntimeError:
        return  # called outside an activity (unit use)
    meter.create_counter(name, description).add(1, {"namespace": key.namespace, "server": key.name, **labels})
