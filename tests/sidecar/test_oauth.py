"""OAuth mode against a tiny real issuer (discovery + JWKS with a generated RSA key)."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import httpx2
import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa

from localstack.config import Ports
from mcp_sentinel.policy import AuthBlock, compute_revision, parse_document, to_pretty_json
from tests.fixtures.sidecar import SidecarProcess, serve_app

POLICY = Path(__file__).resolve().parents[2] / "examples" / "policies" / "server-a.json"
AUD = "https://mcp.example.com/server-a"
RESOURCE = "https://mcp.example.com/server-a/mcp"
META = "https://mcp.example.com/server-a/.well-known/oauth-protected-resource/mcp"


def _b64(n: int) -> str:
    return base64.urlsafe_b64encode(n.to_bytes((n.bit_length() + 7) // 8, "big")).rstrip(b"=").decode()


async def test_oauth_statuses_reasons_and_challenges(tmp_path: Path) -> None:
    ports = Ports.free()
    issuer = f"http://127.0.0.1:{ports.api}"
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pub = key.public_key().public_numbers()
    jwks = {"keys": [{"kty": "RSA", "kid": "k1", "alg": "RS256", "use": "sig", "n": _b64(pub.n), "e": _b64(pub.e)}]}

    async def discovery(_r: web.Request) -> web.Response:
        return web.json_response({"issuer": issuer, "jwks_uri": f"{issuer}/jwks"})

    async def keys(_r: web.Request) -> web.Response:
        return web.json_response(jwks)

    async def upstream(request: web.Request) -> web.Response:
        body = await request.json()
        seen = {k: request.headers.get(k, "") for k in ("Authorization", "X-MCP-Human-ID", "X-MCP-Agent-ID")}
        return web.json_response({"jsonrpc": "2.0", "id": body.get("id"), "result": {"seen": seen}})

    iss_app = web.Application()
    iss_app.router.add_get("/.well-known/openid-configuration", discovery)
    iss_app.router.add_get("/jwks", keys)
    up_app = web.Application()
    up_app.router.add_post("/mcp", upstream)
    runners = []
    for app, port in ((iss_app, ports.api), (up_app, ports.sample_mcp)):
        runners.append(await serve_app(app, port))

    doc = parse_document(POLICY.read_bytes())
    doc = dataclasses.replace(
        doc, auth=AuthBlock(mode="oauth", issuer_url=issuer, audience=AUD, resource=RESOURCE), revision=""
    )
    doc = dataclasses.replace(doc, revision=compute_revision(doc))
    (tmp_path / "p.json").write_text(to_pretty_json(doc))
    sc = await asyncio.to_thread(
        SidecarProcess,
        {
            "PORT": str(ports.sidecar_a),
            "METRICS_PORT": str(ports.sidecar_a_metrics),
            "LISTEN_HOST": "127.0.0.1",
            "UPSTREAM_URL": f"http://127.0.0.1:{ports.sample_mcp}",
            "POLICY_FILE": str(tmp_path / "p.json"),
        },
        tmp_path / "sc.log",
    )
    base = f"http://127.0.0.1:{ports.sidecar_a}"

    def token(**over: Any) -> str:
        claims = {
            "iss": issuer,
            "aud": AUD,
            "sub": "alice",
            "azp": "workspace-agent",
            "sid": "sess-alice-a",
            "exp": int(time.time()) + 300,
            "iat": int(time.time()),
        }
        claims.update(over)
        return jwt.encode(claims, key, algorithm="RS256", headers={"kid": "k1"})

    async def call(auth: str | None) -> httpx2.Response:
        body = {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "search", "arguments": {}}}
        hdrs = {"Content-Type": "application/json", "X-MCP-Human-ID": "mallory"}
        if auth is not None:
            hdrs["Authorization"] = auth
        async with httpx2.AsyncClient(timeout=30) as c:
            return await c.post(f"{base}/mcp", content=json.dumps(body), headers=hdrs)

    none_tok = jwt.encode(
        {"iss": issuer, "aud": AUD, "sub": "alice", "exp": int(time.time()) + 300}, None, algorithm="none"
    )
    hs_tok = jwt.encode(
        {"iss": issuer, "aud": AUD, "sub": "alice", "exp": int(time.time()) + 300}, "s" * 32, algorithm="HS256"
    )
    try:
        ok = await call(f"Bearer {token()}")
        assert ok.status_code == 200, ok.text
        seen = ok.json()["result"]["seen"]
        # Identity comes from the token, spoofed headers are replaced; the bearer token is not passed through.
        assert seen == {"Authorization": "", "X-MCP-Human-ID": "alice", "X-MCP-Agent-ID": "workspace-agent"}
        cases = [
            (None, 401, "missing_bearer_token"),
            (f"Bearer {token(exp=int(time.time()) - 120)}", 401, "invalid_token"),
            (f"Bearer {token(aud='https://other.example.com')}", 401, "invalid_token"),
            (f"Bearer {token(iss='http://evil.example')}", 401, "invalid_token"),
            (f"Bearer {none_tok}", 401, "invalid_token"),
            (f"Bearer {hs_tok}", 401, "invalid_token"),
            ("Basic YWxpY2U6cHc=", 401, "missing_bearer_token"),
        ]
        for auth, status, reason in cases:
            resp = await call(auth)
            assert resp.status_code == status, (auth, resp.text)
            assert resp.json()["error"]["data"]["reason"] == reason
            challenge = resp.headers["WWW-Authenticate"]
            # The server's own public URL from its policy, never this request's Host (127.0.0.1).
            assert f'resource_metadata="{META}"' in challenge
            assert ('error="invalid_token"' in challenge) == (reason == "invalid_token")
        meta = httpx2.get(f"{base}/.well-known/oauth-protected-resource/mcp", timeout=10)
        assert meta.status_code == 200
        assert meta.json() == {
            "resource": RESOURCE,
            "authorization_servers": [issuer],
            "bearer_methods_supported": ["header"],
        }
        # X-Forwarded-Host/Proto are client-controlled: the advertised resource must not follow them.
        spoofed = httpx2.get(
            f"{base}/.well-known/oauth-protected-resource/mcp",
            headers={"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https"},
            timeout=10,
        )
        assert spoofed.json()["resource"] == RESOURCE
        assert httpx2.post(f"{base}/.well-known/oauth-protected-resource", timeout=10).status_code == 405
    finally:
        await asyncio.to_thread(sc.stop)
        for r in runners:
            await r.cleanup()


async def test_oauth_provider_down_is_503(tmp_path: Path) -> None:
    ports = Ports.free()
    doc = parse_document(POLICY.read_bytes())
    doc = dataclasses.replace(
        doc, auth=AuthBlock(mode="oauth", issuer_url=f"http://127.0.0.1:{ports.api}", resource=RESOURCE), revision=""
    )
    doc = dataclasses.replace(doc, revision=compute_revision(doc))
    (tmp_path / "p.json").write_text(to_pretty_json(doc))
    sc = await asyncio.to_thread(
        SidecarProcess,
        {
            "PORT": str(ports.sidecar_a),
            "METRICS_PORT": str(ports.sidecar_a_metrics),
            "LISTEN_HOST": "127.0.0.1",
            "UPSTREAM_URL": f"http://127.0.0.1:{ports.sample_mcp}",
            "POLICY_FILE": str(tmp_path / "p.json"),
        },
        tmp_path / "sc.log",
    )
    try:
        async with httpx2.AsyncClient(timeout=30) as c:
            resp = await c.post(
                f"http://127.0.0.1:{ports.sidecar_a}/mcp",
                content=b'{"jsonrpc":"2.0","id":1,"method":"ping"}',
                headers={"Content-Type": "application/json", "Authorization": "Bearer a.b.c"},
            )
        assert resp.status_code == 401  # malformed token rejected before any provider call
        tok = jwt.encode(
            {"sub": "a"}, rsa.generate_private_key(public_exponent=65537, key_size=2048), algorithm="RS256"
        )
        async with httpx2.AsyncClient(timeout=30) as c:
            resp = await c.post(
                f"http://127.0.0.1:{ports.sidecar_a}/mcp",
                content=b'{"jsonrpc":"2.0","id":1,"method":"ping"}',
                headers={"Content-Type": "application/json", "Authorization": f"Bearer {tok}"},
            )
        assert resp.status_code == 503 and resp.json()["error"]["data"]["reason"] == "oauth_provider_unavailable"
    finally:
        await asyncio.to_thread(sc.stop)


async def test_audience_never_comes_from_the_request_host(tmp_path: Path) -> None:
    """No auth.resource, no EXTERNAL_BASE_URL: refused (503), not bound to whatever Host the client sent.

    Before, the audience was built from Host + path; behind one ingress that strips `/<server>` every
    server expected the same audience, so a token for one opened all of them.
    """
    ports = Ports.free()
    doc = parse_document(POLICY.read_bytes())
    doc = dataclasses.replace(doc, auth=AuthBlock(mode="oauth", issuer_url=f"http://127.0.0.1:{ports.api}"))
    doc = dataclasses.replace(doc, revision=compute_revision(doc))
    (tmp_path / "p.json").write_text(to_pretty_json(doc))
    env = {
        "PORT": str(ports.sidecar_a),
        "METRICS_PORT": str(ports.sidecar_a_metrics),
        "LISTEN_HOST": "127.0.0.1",
        "UPSTREAM_URL": f"http://127.0.0.1:{ports.sample_mcp}",
        "POLICY_FILE": str(tmp_path / "p.json"),
    }
    sc = await asyncio.to_thread(SidecarProcess, env, tmp_path / "sc.log")
    base = f"http://127.0.0.1:{ports.sidecar_a}"
    tok = jwt.encode({"sub": "a"}, rsa.generate_private_key(public_exponent=65537, key_size=2048), algorithm="RS256")
    try:
        async with httpx2.AsyncClient(timeout=30) as c:
            resp = await c.post(
                f"{base}/mcp",
                content=b'{"jsonrpc":"2.0","id":1,"method":"ping"}',
                headers={"Content-Type": "application/json", "Authorization": f"Bearer {tok}"},
            )
            assert resp.status_code == 503, resp.text
            assert resp.json()["error"]["data"]["reason"] == "resource_url_unconfigured"
            meta = await c.get(f"{base}/.well-known/oauth-protected-resource/mcp")
            assert meta.status_code == 503 and meta.json()["error"] == "resource_url_unconfigured"
    finally:
        await asyncio.to_thread(sc.stop)
    # EXTERNAL_BASE_URL (this gateway's own public base) is trusted configuration: it names the resource.
    sc = await asyncio.to_thread(
        SidecarProcess, {**env, "EXTERNAL_BASE_URL": "https://mcp.example.com/server-b"}, tmp_path / "sc2.log"
    )
    try:
        # A foreign Host is refused outright (sidecar/origin.py); a Host the gateway serves under another
        # name (its own public host, a loopback alias) still never becomes the resource.
        meta = httpx2.get(f"{base}/.well-known/oauth-protected-resource/mcp", headers={"Host": "evil.example"},
                          timeout=10)  # fmt: skip
        assert meta.status_code == 403
        for host in ("mcp.example.com", "localhost"):
            meta = httpx2.get(f"{base}/.well-known/oauth-protected-resource/mcp", headers={"Host": host}, timeout=10)
            assert meta.json()["resource"] == "https://mcp.example.com/server-b/mcp", host
    finally:
        await asyncio.to_thread(sc.stop)
