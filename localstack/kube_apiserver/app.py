"""HTTP surface of the local API server: discovery, resource REST paths and watch streams."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from localstack.kube_apiserver.admission import RETURNS_DELETED_OBJECT
from localstack.kube_apiserver.kinds import ALL_VERBS, ResourceType
from localstack.kube_apiserver.pod_logs import serve_log
from localstack.kube_apiserver.selectors import field_selector, label_selector
from localstack.kube_apiserver.settings import ApiServerSettings
from localstack.kube_apiserver.status import JSON, ApiError, bad_request, success
from localstack.kube_apiserver.store import Store, served_types
from localstack.kube_apiserver.watch import Event, event_filter

log = logging.getLogger("localstack.kube_apiserver")

STORE_KEY = web.AppKey("store", Store)
SETTINGS_KEY = web.AppKey("settings", ApiServerSettings)
UNAUTHENTICATED = frozenset({"/healthz", "/readyz", "/livez"})
VERSION = {
    "major": "1",
    "minor": "31",
    "gitVersion": "v1.31.0-mcp-sentinel-local",
    "gitCommit": "",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "n/a",
    "compiler": "n/a",
    "platform": "linux/amd64",
}


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(body), status=status, content_type="application/json")


def _flag(request: web.Request, name: str) -> bool:
    return request.query.get(name, "").lower() in ("true", "1")


@web.middleware
async def _errors(request: web.Request, handler: Any) -> web.StreamResponse:
    settings = request.app[SETTINGS_KEY]
    if settings.token and request.path not in UNAUTHENTICATED:
        if request.headers.get("Authorization", "") != f"Bearer {settings.token}":
            return _json(ApiError(401, "Unauthorized", "Unauthorized").body(), 401)
    try:
        resp: web.StreamResponse = await handler(request)
        return resp
    except ApiError as exc:
        return _json(exc.body(), exc.code)
    except web.HTTPException:
        raise
    except Exception as exc:  # report as a Status instead of aiohttp's HTML page
        log.exception("internal error on %s %s", request.method, request.path)
        return _json(ApiError(500, "InternalError", f"Internal error occurred: {exc}").body(), 500)


def _resource_list(store: Store, group: str, version: str) -> JSON:
    resources: list[JSON] = []
    for rt in served_types(store):
        if rt.group != group or version not in rt.versions:
            continue
        entry: JSON = {
            "name": rt.plural,
            "singularName": rt.singular,
            "namespaced": rt.namespaced,
            "kind": rt.kind,
            "verbs": list(ALL_VERBS),
        }
        if rt.short_names:
            entry["shortNames"] = list(rt.short_names)
        resources.append(entry)
        if rt.has_status:
            resources.append(
                {
                    "name": f"{rt.plural}/status",
                    "singularName": "",
                    "namespaced": rt.namespaced,
                    "kind": rt.kind,
                    "verbs": ["get", "patch", "update"],
                }
            )
    if not resources:
        raise ApiError(404, "NotFound", "the server could not find the requested resource", {})
    gv = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}


def _groups(store: Store) -> list[JSON]:
    groups: dict[str, list[str]] = {}
    for rt in served_types(store):
        if rt.group:
            versions = groups.setdefault(rt.group, [])
            versions.extend(v for v in rt.versions if v not in versions)
    return [
        {
            "name": g,
            "versions": [{"groupVersion": f"{g}/{v}", "version": v} for v in vs],
            "preferredVersion": {"groupVersion": f"{g}/{vs[0]}", "version": vs[0]},
        }
        for g, vs in groups.items()
    ]


async def _health(_request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def _version(_request: web.Request) -> web.Response:
    return _json(VERSION)


async def _api(request: web.Request) -> web.Response:
    host = request.host
    return _json(
        {
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": host}],
        }
    )


async def _apis(request: web.Request) -> web.Response:
    return _json({"kind": "APIGroupList", "apiVersion": "v1", "groups": _groups(request.app[STORE_KEY])})


async def _core_v1(request: web.Request) -> web.Response:
    return _json(_resource_list(request.app[STORE_KEY], "", "v1"))


async def _group(request: web.Request) -> web.Response:
    for g in _groups(request.app[STORE_KEY]):
        if g["name"] == request.match_info["group"]:
            return _json({"kind": "APIGroup", "apiVersion": "v1", **g})
    raise ApiError(404, "NotFound", "the server could not find the requested resource", {})


async def _group_version(request: web.Request) -> web.Response:
    info = request.match_info
    return _json(_resource_list(request.app[STORE_KEY], info["group"], info["version"]))


def _parse(store: Store, group: str, version: str, tail: str) -> tuple[ResourceType, str | None, str | None, str]:
    segs = [s for s in tail.split("/") if s]
    not_found = ApiError(404, "NotFound", "the server could not find the requested resource", {})
    if len(segs) >= 3 and segs[0] == "namespaces":
        rt = store.types.get((group, segs[2]))
        if rt is not None and rt.namespaced:
            if version not in rt.versions or len(segs) > 5:
                raise not_found
            name = segs[3] if len(segs) > 3 else None
            sub = segs[4] if len(segs) > 4 else ""
            if sub and not ((sub == "status" and rt.has_status) or (sub == "log" and rt.key == ("", "pods"))):
                raise not_found
            return rt, segs[1], name, sub
    if not segs or len(segs) > 3:
        raise not_found
    rt = store.resolve(group, version, segs[0])
    name = segs[1] if len(segs) > 1 else None
    sub = segs[2] if len(segs) > 2 else ""
    if (rt.namespaced and name is not None) or (sub and not (sub == "status" and rt.has_status)):
        raise not_found
    return rt, None, name, sub


async def _body(request: web.Request) -> Any:
    raw = await request.read()
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise bad_request(f"the request body is not valid JSON: {exc}") from exc


def _item(store: Store, rt: ResourceType, obj: JSON, version: str, *, in_list: bool = False) -> JSON:
    out = store.render(rt, obj, version)
    if in_list and rt.builtin:
        # Items of built-in lists carry no apiVersion/kind on a real server.
        out.pop("apiVersion", None)
        out.pop("kind", None)
    return out


async def _resource(request: web.Request) -> web.StreamResponse:
    store = request.app[STORE_KEY]
    group = request.match_info.get("group", "")
    version = request.match_info["version"]
    rt, namespace, name, sub = _parse(store, group, version, request.match_info["tail"])
    method = request.method
    dry_run = request.query.get("dryRun") == "All"
    if name is None:
        if method == "GET":
            pred_l = label_selector(request.query.get("labelSelector"))
            pred_f = field_selector(request.query.get("fieldSelector"))

            def pred(o: Mapping[str, Any]) -> bool:
                return pred_l(o) and pred_f(o)

            if _flag(request, "watch"):
                return await _watch(request, rt, version, namespace, pred)
            items = [_item(store, rt, o, version, in_list=True) for o in store.list_objects(rt, namespace, pred)]
            return _json(
                {
                    "kind": f"{rt.kind}List",
                    "apiVersion": rt.api_version(version),
                    "metadata": {"resourceVersion": str(store.rv)},
                    "items": items,
                }
            )
        if method == "POST":
            if rt.namespaced and namespace is None:
                raise ApiError(
                    405, "MethodNotAllowed", "the server does not allow this method on the requested resource"
                )
            created = store.create(rt, namespace or "", await _body(request), version, dry_run=dry_run)
            return _json(_item(store, rt, created, version), 201)
        if method == "DELETE":
            pred_l = label_selector(request.query.get("labelSelector"))
            deleted = []
            for obj in store.list_objects(rt, namespace, pred_l):
                meta = obj["metadata"]
                gone_obj, _ = store.delete(rt, meta.get("namespace", ""), meta["name"], dry_run=dry_run)
                deleted.append(_item(store, rt, gone_obj, version, in_list=True))
            return _json(
                {
                    "kind": f"{rt.kind}List",
                    "apiVersion": rt.api_version(version),
                    "metadata": {"resourceVersion": str(store.rv)},
                    "items": deleted,
                }
            )
        raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
    ns = namespace or ""
    if sub == "log":
        if method != "GET":
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
        pod = store.get(rt, ns, name)
        uid = pod["metadata"].get("uid")

        def still_there() -> bool:
            current = store.objects[rt.key].get((ns, name))
            return current is not None and current["metadata"].get("uid") == uid

        return await serve_log(request, pod, request.app[SETTINGS_KEY].pod_log_dir, still_there)
    if method == "GET":
        return _json(_item(store, rt, store.get(rt, ns, name), version))
    if method == "PUT":
        updated = store.update(rt, ns, name, await _body(request), version, subresource=sub, dry_run=dry_run)
        return _json(_item(store, rt, updated, version))
    if method == "PATCH":
        ctype = request.headers.get("Content-Type", "")
        patched = store.patch(rt, ns, name, ctype, await _body(request), version, subresource=sub, dry_run=dry_run)
        return _json(_item(store, rt, patched, version))
    if method == "DELETE" and not sub:
        opts = await _body(request) or {}
        if not isinstance(opts, dict):
            raise bad_request("DeleteOptions must be a JSON object")
        propagation = request.query.get("propagationPolicy") or opts.get("propagationPolicy") or "Background"
        dry_run = dry_run or "All" in (opts.get("dryRun") or [])
        obj, deleted_now = store.delete(
            rt, ns, name, propagation=propagation, preconditions=opts.get("preconditions"), dry_run=dry_run
        )
        if not deleted_now:
            return _json(_item(store, rt, obj, version), 202)
        if rt.key in RETURNS_DELETED_OBJECT:
            return _json(_item(store, rt, obj, version))
        return _json(success(name, rt.group, rt.plural, obj["metadata"]["uid"]))
    raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")


async def _watch(
    request: web.Request, rt: ResourceType, version: str, namespace: str | None, pred: Any
) -> web.StreamResponse:
    store = request.app[STORE_KEY]
    settings = request.app[SETTINGS_KEY]
    try:
        timeout = int(request.query.get("timeoutSeconds") or settings.max_watch_seconds)
    except ValueError as exc:
        raise bad_request("timeoutSeconds must be an integer") from exc
    timeout = max(0, min(timeout, settings.max_watch_seconds))
    bookmarks = _flag(request, "allowWatchBookmarks")
    resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    resp.enable_chunked_encoding()
    await resp.prepare(request)

    async def send(etype: str, obj: JSON) -> None:
        await resp.write((json.dumps({"type": etype, "object": obj}) + "\n").encode())

    try:
        initial, watcher = store.open_watch(rt, namespace, request.query.get("resourceVersion"))
    except ApiError as exc:
        # A real server reports an expired resourceVersion as an ERROR event on a 200 stream.
        await send("ERROR", exc.body())
        await resp.write_eof()
        return resp
    visible = event_filter(pred)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    next_bookmark = loop.time() + settings.bookmark_interval
    try:
        for first in initial:
            etype = visible(first)
            if etype:
                await send(etype, _item(store, rt, first.obj, version))
        while (remaining := deadline - loop.time()) > 0:
            wait = min(remaining, max(0.0, next_bookmark - loop.time())) if bookmarks else remaining
            event: Event | None
            try:
                event = await asyncio.wait_for(watcher.queue.get(), timeout=wait)
            except TimeoutError:
                event = None
            if event is not None:
                etype = visible(event)
                if etype:
                    await send(etype, _item(store, rt, event.obj, version))
            if bookmarks and loop.time() >= next_bookmark:
                await send(
                    "BOOKMARK",
                    {
                        "kind": rt.kind,
                        "apiVersion": rt.api_version(version),
                        "metadata": {"resourceVersion": str(store.rv)},
                    },
                )
                next_bookmark = loop.time() + settings.bookmark_interval
        with contextlib.suppress(ConnectionError):
            await resp.write_eof()
    except ConnectionError:
        pass  # the client went away
    finally:
        store.close_watch(watcher)
    return resp


def create_app(settings: ApiServerSettings, store: Store | None = None) -> web.Application:
    """The API server application over `store` (a fresh, possibly persisted, store by default)."""
    app = web.Application(middlewares=[_errors], client_max_size=8 * 1024 * 1024)
    app[SETTINGS_KEY] = settings
    app[STORE_KEY] = store if store is not None else Store(settings.state_file, history=settings.history)
    for path in UNAUTHENTICATED:
        app.router.add_get(path, _health)
    app.router.add_get("/version", _version)
    app.router.add_get("/version/", _version)
    app.router.add_get("/api", _api)
    app.router.add_get("/api/", _api)
    app.router.add_get("/apis", _apis)
    app.router.add_get("/apis/", _apis)
    app.router.add_get("/api/v1", _core_v1)
    app.router.add_get("/api/v1/", _core_v1)
    app.router.add_get("/apis/{group}", _group)
    app.router.add_get("/apis/{group}/{version}", _group_version)
    app.router.add_get("/apis/{group}/{version}/", _group_version)
    app.router.add_route("*", "/api/{version:v1}/{tail:.+}", _resource)
    app.router.add_route("*", "/apis/{group}/{version}/{tail:.+}", _resource)
    return app
