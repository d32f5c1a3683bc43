"""Over-limit refusals a client can read: a 413 always closes the connection (issue 17, item 4).

The sidecar answers 413 from the declared Content-Length before reading the body, or after
reading up to its limit. aiohttp then keeps reading and discarding what the client still sends
(its lingering close, bounded by time), so the client is not reset mid-upload and reads the 413;
`Connection: close` tells it not to reuse a connection whose remaining bytes the server is
throwing away.
"""

from __future__ import annotations

from aiohttp import web


async def close_after_413(_request: web.Request, response: web.StreamResponse) -> None:
    """`on_response_prepare` hook."""
    if response.status == 413:
        response.force_close()  # the connection closes after this answer (and its lingering read)
        response.headers["Connection"] = "close"  # the hook runs after aiohttp derived the header


def install(app: web.Application) -> None:
    """Register the hook on the public application."""
    app.on_response_prepare.append(close_after_413)
