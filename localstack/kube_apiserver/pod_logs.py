"""`GET /api/v1/namespaces/{ns}/pods/{name}/log`: container logs, as the kubelet would serve them.

Nothing runs pods here, so the log text comes from files, one per container, under
`KUBE_APISERVER_POD_LOG_DIR`: `<dir>/<namespace>/<pod>/<container>.log` (whatever stands in for the
kubelet writes them; tests write them directly). The answers follow the real API: `text/plain`,
404 for a missing pod, 400 for a container the pod does not have or an ambiguous one, 400 "waiting
to start" while a container has no log yet; `container`, `tailLines` and `follow` are honoured.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from aiohttp import web

from localstack.kube_apiserver.status import JSON, bad_request

FOLLOW_POLL = 0.25


def _container(pod: JSON, requested: str) -> str:
    name = pod["metadata"]["name"]
    containers = [str(c.get("name")) for c in ((pod.get("spec") or {}).get("containers") or []) if c.get("name")]
    if requested:
        if requested not in containers:
            raise bad_request(f"container {requested} is not valid for pod {name}")
        return requested
    if len(containers) == 1:
        return containers[0]
    if not containers:
        raise bad_request(f"pod {name} has no containers")
    raise bad_request(f"a container name must be specified for pod {name}, choose one of: [{' '.join(containers)}]")


def _tail(text: bytes, lines: int | None) -> bytes:
    if lines is None:
        return text
    if lines <= 0:
        return b""
    return b"".join(text.splitlines(keepends=True)[-lines:])


async def serve_log(request: web.Request, pod: JSON, log_dir: Path | None, still_there: Any) -> web.StreamResponse:
    """The container's log for `pod` (an object the caller already read, so a missing pod was a 404)."""
    container = _container(pod, request.query.get("container", ""))
    meta = pod["metadata"]
    path = (log_dir / meta["namespace"] / meta["name"] / f"{container}.log") if log_dir else None
    if path is None or not path.is_file():
        raise bad_request(f'container "{container}" in pod "{meta["name"]}" is waiting to start: ContainerCreating')
    raw_tail = request.query.get("tailLines")
    try:
        tail = int(raw_tail) if raw_tail is not None else None
    except ValueError:
        raise bad_request(f"tailLines: invalid value {raw_tail!r}") from None
    data = path.read_bytes()
    if request.query.get("follow") not in ("true", "1"):
        return web.Response(body=_tail(data, tail), content_type="text/plain")
    resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
    await resp.prepare(request)
    await resp.write(_tail(data, tail))
    offset = len(data)
    # Follow until the pod is deleted or the client goes away (the connection closing ends the write).
    while still_there():
        await asyncio.sleep(FOLLOW_POLL)
        with path.open("rb") as fh:
            fh.seek(offset)
            chunk = fh.read()
        if chunk:
            offset += len(chunk)
            await resp.write(chunk)
    return resp
