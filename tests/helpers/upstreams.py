"""Small real HTTP servers standing in for the components behind the front door.

They run on their own event loop in a thread so the (blocking) Supervisor can start the real
front-door process from the test thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from aiohttp import web


def _app(name: str, release: threading.Event) -> web.Application:
    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        return web.json_response(
            {
                "upstream": name,
                "method": request.method,
                "path": request.path,
                "query": request.query_string,
                "headers": dict(request.headers),
                "body_len": len(body),
                "body_head": body[:64].decode("latin-1"),
            }
        )

    async def sse(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)
        await resp.write(b"event: message\ndata: first\n\n")
        # The second event is only sent once the client has seen the first: a buffering proxy deadlocks.
        await asyncio.get_running_loop().run_in_executor(None, release.wait, 20)
        await resp.write(b"event: message\ndata: second\n\n")
        await resp.write_eof()
        return resp

    app = web.Application(client_max_size=8 * 1024 * 1024)
    app.router.add_get("/mcp/sse", sse)
    app.router.add_route("*", "/{tail:.*}", echo)
    return app


@contextmanager
def serve_upstreams(ports: dict[str, int]) -> Iterator[threading.Event]:
    """Serve one echo/SSE app per name on 127.0.0.1:<port>; yields the SSE release event."""
    release = threading.Event()
    loop = asyncio.new_event_loop()
    runners: list[web.AppRunner] = []
    started = threading.Event()

    async def start() -> None:
        for name, port in ports.items():
            runner = web.AppRunner(_app(name, release))
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", port).start()
            runners.append(runner)

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert started.wait(10), "upstream servers did not start"
    try:
        yield release
    finally:
        release.set()

        async def stop() -> None:
            for runner in runners:
                await runner.cleanup()

        asyncio.run_coroutine_threadsafe(stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
