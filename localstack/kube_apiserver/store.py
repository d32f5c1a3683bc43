"""Object storage and write semantics: resourceVersion, uid, generation, admission, watch fan-out.

Everything runs on the server's single event loop, so each operation is atomic. One global
counter provides every `resourceVersion` (as etcd's revision does). A bounded history of
events lets watches resume from a recent resourceVersion; older ones get 410 Expired. State
(objects, counter, registered CRDs) is saved to a JSON file by atomic rename after each write.
"""

from __future__ import annotations

import copy
import json
import os
import secrets
import uuid
from collections import deque
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from localstack.kube_apiserver import patch as patching
from localstack.kube_apiserver.admission import (  # the kind keys and annotations are defined there, once
    CRD_KEY,
    DEPLOY_KEY,
    NS_KEY,
    Key,
    ObjKey,
    admit,
    check_body,
    deployment_status,
    now_rfc3339,
)
from localstack.kube_apiserver.kinds import ResourceType, builtin_types, from_crd
from localstack.kube_apiserver.selectors import Predicate
from localstack.kube_apiserver.status import (
    JSON,
    ApiError,
    already_exists,
    bad_request,
    cause,
    conflict,
    gone,
    invalid,
    not_found,
)
from localstack.kube_apiserver.watch import Event, Watcher

_GEN_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def _without(obj: JSON, *keys: str) -> JSON:
    return {k: v for k, v in obj.items() if k not in keys}


class Store:
    """All objects of all served types, with Kubernetes write semantics."""

    def __init__(self, state_path: Path | None = None, *, history: int = 1000) -> None:
        self.state_path = state_path
        self.types: dict[Key, ResourceType] = {t.key: t for t in builtin_types()}
        self.objects: dict[Key, dict[ObjKey, JSON]] = {k: {} for k in self.types}
        self.rv = 0
        self.history: deque[Event] = deque(maxlen=max(1, history))
        self.floor = 0
        self.watchers: set[Watcher] = set()
        self.token = ""
        self._load()

    # ----- persistence -------------------------------------------------------------------

    def _load(self) -> None:
        if self.state_path is None or not self.state_path.exists():
            return
        state = json.loads(self.state_path.read_text())
        self.rv = int(state.get("resourceVersion", 0))
        self.token = str(state.get("token", ""))
        objects: dict[str, list[JSON]] = state.get("objects", {})
        crds = objects.get("apiextensions.k8s.io/customresourcedefinitions", [])
        for crd in crds:
            self._register(from_crd(crd))
        for joined, items in objects.items():
            group, _, plural = joined.rpartition("/")
            key = (group, plural)
            if key not in self.types:
                continue  # a CRD that no longer loads; its objects go with it
            bucket = self.objects[key]
            for obj in items:
                meta = obj["metadata"]
                bucket[(meta.get("namespace", ""), meta["name"])] = obj
        self.floor = self.rv

    def save(self) -> None:
        """Write the whole state to the state file by atomic rename."""
        if self.state_path is None:
            return
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        state = {
            "resourceVersion": self.rv,
            "token": self.token,
            "objects": {f"{g}/{p}": list(b.values()) for (g, p), b in self.objects.items() if b},
        }
        tmp = self.state_path.with_name(self.state_path.name + ".tmp")
        with open(tmp, "w") as fh:
            json.dump(state, fh, separators=(",", ":"))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.state_path)

    # ----- type registry -----------------------------------------------------------------

    def _register(self, rt: ResourceType) -> None:
        self.types[rt.key] = rt
        self.objects.setdefault(rt.key, {})

    def resolve(self, group: str, version: str, plural: str) -> ResourceType:
        """The resource type served at `group/version/plural`, or 404 like an unknown path."""
        rt = self.types.get((group, plural))
        if rt is None or version not in rt.versions:
            raise ApiError(404, "NotFound", "the server could not find the requested resource", {})
        return rt

    # ----- reads -------------------------------------------------------------------------

    def render(self, rt: ResourceType, obj: JSON, version: str | None) -> JSON:
        """A copy of a stored object as served at `version` (no conversion beyond apiVersion)."""
        out = copy.deepcopy(obj)
        out["apiVersion"] = rt.api_version(version)
        out["kind"] = rt.kind
        return out

    def get(self, rt: ResourceType, namespace: str, name: str) -> JSON:
        """The stored object (not a copy), or 404."""
        obj = self.objects[rt.key].get((namespace if rt.namespaced else "", name))
        if obj is None:
            raise not_found(rt.plural, rt.group, name)
        return obj

    def list_objects(self, rt: ResourceType, namespace: str | None, pred: Predicate) -> list[JSON]:
        """Matching stored objects, ordered by namespace then name (as etcd keys sort)."""
        bucket = self.objects[rt.key]
        return [
            obj
            for (ns, _n), obj in sorted(bucket.items())
            if (namespace is None or not rt.namespaced or ns == namespace) and pred(obj)
        ]

    # ----- commit ------------------------------------------------------------------------

    def _commit(self, rt: ResourceType, etype: str, obj: JSON, old: JSON | None) -> JSON:
        self.rv += 1
        meta = obj["metadata"]
        meta["resourceVersion"] = str(self.rv)
        okey = (meta.get("namespace", ""), meta["name"])
        if etype == "DELETED":
            self.objects[rt.key].pop(okey, None)
        else:
            self.objects[rt.key][okey] = obj
        if len(self.history) == self.history.maxlen:
            self.floor = self.history[0].rv
        event = Event(self.rv, etype, rt.key, obj, old)
        self.history.append(event)
        for w in self.watchers:
            if w.key == rt.key and (w.namespace is None or w.namespace == meta.get("namespace", "")):
                w.queue.put_nowait(event)
        return obj

    # ----- admission ---------------------------------------------------------------------

    def create(self, rt: ResourceType, namespace: str, body: Any, version: str, *, dry_run: bool = False) -> JSON:
        """POST: a new object with uid, creationTimestamp, generation and a fresh resourceVersion."""
        obj = check_body(rt, body, version)
        meta = obj["metadata"]
        if rt.namespaced:
            if meta.get("namespace") not in (None, "", namespace):
                raise bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            meta["namespace"] = namespace
            if ("", namespace) not in self.objects[NS_KEY]:
                raise not_found("namespaces", "", namespace)
        else:
            meta.pop("namespace", None)
        if not meta.get("name"):
            if meta.get("generateName"):
                meta["name"] = meta["generateName"] + "".join(secrets.choice(_GEN_ALPHABET) for _ in range(5))
            else:
                raise invalid(
                    rt.kind,
                    rt.group,
                    "",
                    [cause("FieldValueRequired", "metadata.name", "Required value: name or generateName is required")],
                )
        name = meta["name"]
        if (meta.get("namespace", ""), name) in self.objects[rt.key]:
            raise already_exists(rt.plural, rt.group, name)
        for system in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds"):
            meta.pop(system, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_rfc3339()
        if rt.tracks_generation:
            meta["generation"] = 1
        if rt.has_status and rt.key != CRD_KEY:
            obj.pop("status", None)
        admit(rt, obj)
        if rt.key == DEPLOY_KEY:
            deployment_status(obj)
        if dry_run:
            return obj
        self._commit(rt, "ADDED", obj, None)
        if rt.key == CRD_KEY:
            self._register(from_crd(obj))
        self.save()
        return obj

    def update(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        body: Any,
        version: str,
        *,
        subresource: str = "",
        dry_run: bool = False,
        require_rv: bool | None = None,
    ) -> JSON:
        """PUT (replace) of the main resource or its `status` subresource."""
        old = self.get(rt, namespace, name)
        obj = check_body(rt, body, version)
        meta = obj["metadata"]
        if meta.get("name") not in (None, name):
            raise bad_request(
                f"the name of the object ({meta.get('name')}) does not match the name on the URL ({name})"
            )
        if rt.namespaced and meta.get("namespace") not in (None, "", namespace):
            raise bad_request("the namespace of the provided object does not match the namespace sent on the request")
        old_meta = old["metadata"]
        rv = meta.get("resourceVersion")
        must_have_rv = (not rt.builtin) if require_rv is None else require_rv
        if rv in (None, "") and must_have_rv:
            raise invalid(
                rt.kind,
                rt.group,
                name,
                [
                    cause(
                        "FieldValueInvalid",
                        "metadata.resourceVersion",
                        "Invalid value: 0x0: must be specified for an update",
                    )
                ],
            )
        if rv not in (None, "") and rv != old_meta["resourceVersion"]:
            raise conflict(rt.plural, rt.group, name)
        if subresource == "status":
            new = copy.deepcopy(old)
            new["status"] = copy.deepcopy(obj.get("status"))
            if new["status"] is None:
                new.pop("status")
            if not rt.builtin:
                admit(rt, new)
        else:
            new = obj
            new_meta = new["metadata"]
            new_meta["name"] = name
            if rt.namespaced:
                new_meta["namespace"] = namespace
            for system in ("uid", "creationTimestamp", "generation", "deletionTimestamp", "deletionGracePeriodSeconds"):
                if system in old_meta:
                    new_meta[system] = old_meta[system]
                else:
                    new_meta.pop(system, None)
            if rt.has_status and rt.key != CRD_KEY:
                if "status" in old:
                    new["status"] = copy.deepcopy(old["status"])
                else:
                    new.pop("status", None)
            admit(rt, new)
            if rt.tracks_generation and _without(new, "metadata", "status") != _without(old, "metadata", "status"):
                new_meta["generation"] = int(old_meta.get("generation", 1)) + 1
            if rt.key == DEPLOY_KEY:
                deployment_status(new)
        new["metadata"]["resourceVersion"] = old_meta["resourceVersion"]
        if new == old:
            return old  # a no-op write does not bump the resourceVersion, as on a real server
        if dry_run:
            return new
        new_meta = new["metadata"]
        if new_meta.get("deletionTimestamp") and not new_meta.get("finalizers"):
            self._delete_now(rt, new, "Background")
            self.save()
            return new
        self._commit(rt, "MODIFIED", new, old)
        if rt.key == CRD_KEY:
            self._register(from_crd(new))
        self.save()
        return new

    def patch(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        content_type: str,
        body: Any,
        version: str,
        *,
        subresource: str = "",
        dry_run: bool = False,
    ) -> JSON:
        """PATCH: apply the patch to the current object, then write it like a PUT."""
        old = self.get(rt, namespace, name)
        current = self.render(rt, old, version)
        patched = patching.apply_patch(content_type, current, body)
        if not isinstance(patched, dict):
            raise bad_request("the patch must produce a JSON object")
        return self.update(
            rt, namespace, name, patched, version, subresource=subresource, dry_run=dry_run, require_rv=False
        )

    def delete(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        *,
        propagation: str = "Background",
        preconditions: JSON | None = None,
        dry_run: bool = False,
    ) -> tuple[JSON, bool]:
        """DELETE; returns (object, deleted_now). Objects with finalizers are only marked."""
        obj = self.get(rt, namespace, name)
        meta = obj["metadata"]
        pre = preconditions or {}
        if (pre.get("uid") and pre["uid"] != meta["uid"]) or (
            pre.get("resourceVersion") and pre["resourceVersion"] != meta["resourceVersion"]
        ):
            raise conflict(rt.plural, rt.group, name)
        if propagation not in ("Background", "Foreground", "Orphan"):
            raise bad_request(
                f'propagationPolicy "{propagation}" is not supported: must be Orphan, Background or Foreground'
            )
        if dry_run:
            return obj, True
        if meta.get("finalizers"):
            if not meta.get("deletionTimestamp"):
                new = copy.deepcopy(obj)
                new["metadata"]["deletionTimestamp"] = now_rfc3339()
                new["metadata"]["deletionGracePeriodSeconds"] = 0
                self._commit(rt, "MODIFIED", new, obj)
                self.save()
                return new, False
            return obj, False
        deleted = self._delete_now(rt, copy.deepcopy(obj), propagation)
        self.save()
        return deleted, True

    def _delete_now(self, rt: ResourceType, obj: JSON, propagation: str) -> JSON:
        meta = obj["metadata"]
        if rt.key == NS_KEY:
            # Namespace deletion removes everything in it (the real namespace controller does this
            # asynchronously while the namespace is Terminating; we do it synchronously).
            for other in list(self.types.values()):
                if other.namespaced:
                    for (ns, _n), child in list(self.objects[other.key].items()):
                        if ns == meta["name"]:
                            self._delete_now(other, copy.deepcopy(child), propagation)
        if rt.key == CRD_KEY:
            served = from_crd(obj)
            for child in list(self.objects.get(served.key, {}).values()):
                self._delete_now(served, copy.deepcopy(child), propagation)
        self._commit(rt, "DELETED", obj, None)
        if rt.key == CRD_KEY:
            self.types.pop(from_crd(obj).key, None)
            self.objects.pop(from_crd(obj).key, None)
        self._collect_dependents(meta["uid"], propagation)
        return obj

    def _collect_dependents(self, owner_uid: str, propagation: str) -> None:
        """Garbage collection by ownerReferences (synchronous here; the real GC is a controller)."""
        for rt in list(self.types.values()):
            for child in list(self.objects.get(rt.key, {}).values()):
                refs = child["metadata"].get("ownerReferences") or []
                if not any(r.get("uid") == owner_uid for r in refs):
                    continue
                if propagation == "Orphan":
                    new = copy.deepcopy(child)
                    new["metadata"]["ownerReferences"] = [r for r in refs if r.get("uid") != owner_uid]
                    if not new["metadata"]["ownerReferences"]:
                        del new["metadata"]["ownerReferences"]
                    self._commit(rt, "MODIFIED", new, child)
                elif child["metadata"].get("finalizers"):
                    continue
                else:
                    self._delete_now(rt, copy.deepcopy(child), propagation)

    # ----- watch -------------------------------------------------------------------------

    def open_watch(
        self, rt: ResourceType, namespace: str | None, resource_version: str | None
    ) -> tuple[list[Event], Watcher]:
        """Register a watcher and return the events it must see first (replay or initial state)."""
        if resource_version in (None, "", "0"):
            initial = [
                Event(int(o["metadata"]["resourceVersion"]), "ADDED", rt.key, o)
                for o in self.list_objects(rt, namespace, lambda _o: True)
            ]
        else:
            try:
                since = int(str(resource_version))
            except ValueError as exc:
                raise bad_request(f"invalid resource version: {resource_version}") from exc
            if since < self.floor:
                raise gone(f"too old resource version: {since} ({self.floor})")
            initial = [
                e
                for e in self.history
                if e.rv > since
                and e.key == rt.key
                and (namespace is None or e.obj["metadata"].get("namespace", "") == namespace)
            ]
        watcher = Watcher(rt.key, namespace if rt.namespaced else None)
        self.watchers.add(watcher)
        return initial, watcher

    def close_watch(self, watcher: Watcher) -> None:
        """Forget a watcher whose stream ended."""
        self.watchers.discard(watcher)


def served_types(store: Store) -> Iterable[ResourceType]:
    """Every resource type currently served, core first."""
    return sorted(store.types.values(), key=lambda t: (t.group != "", t.group, t.plural))
