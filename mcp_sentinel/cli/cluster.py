"""`sentinel status|logs|events --kube`: the same questions asked of a Kubernetes cluster.

Through the product's Kubernetes client (`mcp_sentinel.kube.client.load_kube`: in-cluster config or
`KUBECONFIG`), never kubectl. "The platform" is the pods labelled
`app.kubernetes.io/part-of=mcp-sentinel` in the platform namespace (`knative/`: `mcp-sentinel`);
"the MCP servers" are the pods of every namespace that holds an `MCPServer`, or of `-N` only.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any

from mcp_sentinel.cli.client import CliError
from mcp_sentinel.cli.output import emit_json, table
from mcp_sentinel.cli.remote import EVENT_FILTERS
from mcp_sentinel.kube.errors import KubeError, translate

if TYPE_CHECKING:  # the kubernetes client is imported by the commands only: every other command starts faster
    from kubernetes import client as k8s

PLATFORM_NAMESPACE = "mcp-sentinel"
PLATFORM_SELECTOR = "app.kubernetes.io/part-of=mcp-sentinel"
NAME_LABELS = ("app.kubernetes.io/name", "app")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The flags every cluster-capable command shares."""
    p.add_argument("--kube", action="store_true",
                   help="ask the Kubernetes cluster (in-cluster config or KUBECONFIG) instead of the local stack")
    p.add_argument("--platform-namespace", default=os.environ.get("SENTINEL_NAMESPACE", PLATFORM_NAMESPACE),
                   help="with --kube: the platform's namespace (env SENTINEL_NAMESPACE; "
                        f"default {PLATFORM_NAMESPACE})")


def _api() -> k8s.ApiClient:
    from mcp_sentinel.kube.client import load_kube

    try:
        return load_kube(os.environ)
    except KubeError as exc:
        raise CliError(f"cannot reach the cluster: {exc}", exit_code=2) from exc


def _call(fn: Any, *args: Any, **kw: Any) -> Any:
    try:
        return translate(partial(fn, *args, **kw))
    except KubeError as exc:  # not found, forbidden, unreachable, a 400 about the container: one line, exit 2
        raise CliError(f"Kubernetes API: {exc}", exit_code=2) from exc


def _server_namespaces(api: k8s.ApiClient) -> list[str]:
    from mcp_sentinel.kube.resources import MCP_SERVER, CustomResources

    try:
        servers = CustomResources(api, MCP_SERVER).list(None)
    except KubeError as exc:
        raise CliError(f"Kubernetes API: cannot list MCPServers: {exc}", exit_code=2) from exc
    return sorted({str((s.get("metadata") or {}).get("namespace") or "") for s in servers} - {""})


def _scopes(api: k8s.ApiClient, args: argparse.Namespace) -> list[tuple[str, str]]:
    """(namespace, label selector) pairs to look at: the platform's pods, then the MCP servers'."""
    ns = getattr(args, "namespace", None)
    if ns:
        return [(ns, "")]
    return [(args.platform_namespace, PLATFORM_SELECTOR)] + [(n, "") for n in _server_namespaces(api)
                                                             if n != args.platform_namespace]


def _age(ts: datetime | None) -> str:
    if ts is None:
        return "-"
    seconds = int((datetime.now(UTC) - ts).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


def _component(pod: Any) -> str:
    labels = pod.metadata.labels or {}
    return next((labels[k] for k in NAME_LABELS if labels.get(k)), "-")


def pod_rows(api: k8s.ApiClient, args: argparse.Namespace) -> list[dict[str, Any]]:
    from kubernetes import client as k8s

    core = k8s.CoreV1Api(api)
    rows: list[dict[str, Any]] = []
    for ns, selector in _scopes(api, args):
        pods = _call(core.list_namespaced_pod, ns, label_selector=selector)
        for pod in pods.items:
            statuses = (pod.status.container_statuses if pod.status else None) or []
            containers = (pod.spec.containers if pod.spec else None) or []
            ready = sum(1 for c in statuses if c.ready)
            phase = (pod.status.phase if pod.status else None) or "Unknown"
            healthy = phase == "Running" and bool(containers) and ready == len(containers)
            rows.append({
                "namespace": ns, "name": pod.metadata.name, "component": _component(pod), "phase": phase,
                "ready": f"{ready}/{len(containers)}", "restarts": sum(c.restart_count or 0 for c in statuses),
                "age": _age(pod.metadata.creation_timestamp), "state": "healthy" if healthy else "unhealthy",
            })  # fmt: skip
    return rows


def cmd_status(args: argparse.Namespace) -> int:
    """Pods of the platform and of the MCP servers; exit 1 unless every one is running and ready."""
    api = _api()
    try:
        rows = pod_rows(api, args)
    finally:
        api.close()  # type: ignore[no-untyped-call]
    if args.json:
        emit_json(rows)
    else:
        table(rows, ["namespace", "name", "component", "phase", "ready", "restarts", "age"],
              empty=f"no pods (platform namespace {args.platform_namespace}, no MCPServers?)")
    return 0 if rows and all(r["state"] == "healthy" for r in rows) else 1


def _find_pod(api: k8s.ApiClient, args: argparse.Namespace) -> tuple[str, str]:
    """(namespace, pod) for `args.component`: a pod of that name, else the newest pod labelled with it."""
    from kubernetes import client as k8s

    core = k8s.CoreV1Api(api)
    candidates: list[Any] = []
    for ns, selector in _scopes(api, args):
        for pod in _call(core.list_namespaced_pod, ns, label_selector=selector).items:
            if pod.metadata.name == args.component:
                return ns, args.component
            if _component(pod) in (args.component, f"mcp-sentinel-{args.component}"):
                candidates.append(pod)
    if not candidates:
        raise CliError(f"no pod named or labelled {args.component!r} in the platform namespace or the MCP "
                       "servers' namespaces (try `sentinel status --kube`)", exit_code=2)
    newest = max(candidates, key=lambda p: p.metadata.creation_timestamp or datetime.min.replace(tzinfo=UTC))
    return newest.metadata.namespace, newest.metadata.name


def cmd_logs(args: argparse.Namespace) -> int:
    """A pod's log (by pod name or component), and with -f, follow it."""
    from kubernetes import client as k8s

    api = _api()
    try:
        ns, pod = _find_pod(api, args)
        core = k8s.CoreV1Api(api)
        kw: dict[str, Any] = {"tail_lines": args.lines}
        if args.container:
            kw["container"] = args.container
        if not args.follow:
            text = _call(core.read_namespaced_pod_log, pod, ns, **kw)
            print(text, end="" if not text or text.endswith("\n") else "\n")
            return 0
        resp = _call(core.read_namespaced_pod_log, pod, ns, follow=True, _preload_content=False, **kw)
        try:
            for chunk in _chunks(resp):
                print(chunk, end="", flush=True)
        except KeyboardInterrupt:
            pass
        finally:
            resp.release_conn()
        return 0
    finally:
        api.close()  # type: ignore[no-untyped-call]


def _chunks(resp: Any) -> Iterator[str]:
    for chunk in resp.stream(4096, decode_content=True):
        yield chunk.decode(errors="replace")


def _event_time(ev: Any) -> datetime:
    ts = ev.last_timestamp or ev.event_time or ev.first_timestamp or ev.metadata.creation_timestamp
    return ts if isinstance(ts, datetime) else datetime.min.replace(tzinfo=UTC)


def cmd_events(args: argparse.Namespace) -> int:
    """Kubernetes events of the platform and MCP server namespaces, newest first."""
    used = [f for f in EVENT_FILTERS if f != "namespace" and getattr(args, f, None)]
    if used:
        raise CliError(f"--{used[0].replace('_', '-')} filters audit events; with --kube (Kubernetes events) "
                       "only --namespace and --limit apply", exit_code=2)
    from kubernetes import client as k8s

    api = _api()
    try:
        core = k8s.CoreV1Api(api)
        namespaces = list(dict.fromkeys(ns for ns, _sel in _scopes(api, args)))
        events = [ev for ns in namespaces for ev in _call(core.list_namespaced_event, ns).items]
    finally:
        api.close()  # type: ignore[no-untyped-call]
    events.sort(key=_event_time, reverse=True)
    rows = [{
        "time": _event_time(ev).isoformat() if _event_time(ev).year > 1 else "-",
        "namespace": ev.metadata.namespace, "type": ev.type, "reason": ev.reason,
        "object": f"{(ev.involved_object.kind or '').lower()}/{ev.involved_object.name}" if ev.involved_object else "-",
        "count": ev.count, "message": ev.message,
    } for ev in events[: args.limit]]  # fmt: skip
    if args.json:
        emit_json(rows)
    else:
        table(rows, ["time", "namespace", "type", "reason", "object", "message"], empty="no events")
    return 0
