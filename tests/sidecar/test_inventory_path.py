"""The sidecar's live-inventory listener (`INVENTORY_PORT`, `/.sentinel/inventory/<mcp path>`).

Attacked as the brief's attacker would: a team that captured the token the API sent to *its* server
tries it on another server; any verb carrying a `tools/call`; compressed bodies; the public port.
Real sidecar processes in front of a permissive upstream that executes whatever reaches it, by any
verb, and records it: the honest double for "did the call get through".
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import hmac
import json
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from localstack.config import Ports
from mcp_sentinel.inventory_token import (
    DEFAULT_TTL,
    ISSUER,
    MAX_LIFETIME,
    TYP,
    Signer,
    TokenRejected,
    audience,
    generate_pem,
    key_id,
    load_signing_key,
    load_verify_keys,
    public_pem,
    verify,
)
from tests.fixtures.sidecar import ALICE, BOB, SidecarProcess, SidecarStack, mcp_client, serve_app

TOKEN_HEADER = "X-Sentinel-Inventory-Token"
POLICY = Path(__file__).resolve().parents[2] / "examples" / "policies" / "server-a.json"
LIST = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
CALL = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "delete_document", "arguments": {}}}
JSON = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
NS = "team-a"


def _spooled(metrics_url: str) -> float:
    text = httpx2.get(metrics_url, timeout=10).text
    found = re.search(r"^mcp_gateway_audit_events_spooled_total (\S+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


def _keypair(tmp_path: Path, name: str = "api") -> tuple[Signer, Path]:
    private = tmp_path / f"{name}.pem"
    private.write_bytes(generate_pem())
    public = tmp_path / f"{name}.pub.pem"
    key = load_signing_key(str(private))
    public.write_bytes(public_pem(key))
    return Signer(key), public


# -- a real sidecar in front of a permissive upstream -----------------------------------------------


@dataclass
class Rig:
    """One sidecar (server `team-a/server-a`, inventory listener on) and what its upstream executed."""

    ports: Ports
    signer: Signer
    seen: list[tuple[str, str, Any, dict[str, str]]] = field(default_factory=list)

    @property
    def inventory(self) -> str:
        return f"http://127.0.0.1:{self.ports.sidecar_a_inventory}/.sentinel/inventory/mcp"

    @property
    def public(self) -> str:
        return f"http://127.0.0.1:{self.ports.sidecar_a}"

    @property
    def metrics(self) -> str:
        return f"http://127.0.0.1:{self.ports.sidecar_a_metrics}/metrics"

    def token(self, namespace: str = NS, name: str = "server-a") -> dict[str, str]:
        return {TOKEN_HEADER: self.signer.mint(namespace, name)}

    def executed_calls(self) -> list[tuple[str, Any]]:
        return [(verb, m["params"]["name"]) for verb, _path, body, _h in self.seen
                for m in (body if isinstance(body, list) else [body])
                if isinstance(m, dict) and m.get("method") == "tools/call"]


@asynccontextmanager
async def rig(tmp_path: Path, **env: str) -> AsyncIterator[Rig]:
    ports = Ports.free()
    signer, public = _keypair(tmp_path)
    r = Rig(ports, signer)

    async def anything(request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw
        r.seen.append((request.method, request.path, body, dict(request.headers)))
        msg_id = body.get("id") if isinstance(body, dict) else None
        return web.json_response({"jsonrpc": "2.0", "id": msg_id, "result": {"executed": True,
                                                                               "tools": [{"name": "secret_tool"}]}})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", anything)
    runner = await serve_app(app, ports.sample_mcp)
    policy = tmp_path / "p.json"
    policy.write_bytes(POLICY.read_bytes())
    full = {
        "PORT": str(ports.sidecar_a), "METRICS_PORT": str(ports.sidecar_a_metrics),
        "INVENTORY_PORT": str(ports.sidecar_a_inventory), "INVENTORY_PUBLIC_KEYS_FILE": str(public),
        "MCP_SERVER_NAMESPACE": NS, "MCP_SERVER_NAME": "server-a", "LISTEN_HOST": "127.0.0.1",
        "UPSTREAM_URL": f"http://127.0.0.1:{ports.sample_mcp}", "POLICY_FILE": str(policy),
        "AUDIT_SPOOL_DIR": str(tmp_path / "spool"), **env,
    }  # fmt: skip
    sc = await asyncio.to_thread(SidecarProcess, full, tmp_path / "sc.log")
    try:
        yield r
    finally:
        await asyncio.to_thread(sc.stop)
        await runner.cleanup()


# -- through the local stack, with the official client -----------------------------------------------


async def test_the_inventory_lists_what_the_server_serves_unfiltered_and_unaudited(sidecar_stack: SidecarStack) -> None:
    cfg = sidecar_stack.cfg
    signer = Signer(load_signing_key(str(cfg.inventory_keys()[0])))
    metrics = sidecar_stack.metrics_url("server-b")
    before = _spooled(metrics)
    url = cfg.url("sidecar_b_inventory", "/.sentinel/inventory/mcp")
    async with mcp_client(url, {TOKEN_HEADER: signer.mint(cfg.namespace, "server-b")}, mode="legacy") as c:
        everything = {t.name for t in (await c.list_tools()).tools}
    await asyncio.sleep(0.3)
    assert _spooled(metrics) == before  # listing for the catalog decides nothing: no audit
    # The same server through its governed path, as bob (grant on server-b for a few tools): filtered.
    async with mcp_client(sidecar_stack.url("server-b"), BOB, mode="legacy") as c:
        bobs = {t.name for t in (await c.list_tools()).tools}
    assert {"list_documents", "delete_document", "archive_document"} <= everything
    assert bobs < everything
    assert _spooled(metrics) > before  # the governed listing is audited
    # server-a's token opens server-a, never server-b (the stack's two sidecars share the key).
    for_a = {TOKEN_HEADER: signer.mint(cfg.namespace, "server-a"), **JSON}
    r = httpx2.post(cfg.url("sidecar_a_inventory", "/.sentinel/inventory/mcp"), json=LIST, headers=for_a, timeout=10)
    assert r.status_code in (200, 400), r.text  # 400: the sample wants a session first; past the token check
    r = httpx2.post(url, json=LIST, headers=for_a, timeout=10)
    assert r.status_code == 401 and r.json() == {"error": "inventory_unauthorized", "reason": "wrong_server"}


def test_the_upstream_probe_agent_id_is_audited_like_anyone(sidecar_stack: SidecarStack) -> None:
    # Upstream skipped auditing any request whose agent id was the probe's; in header mode anyone can claim it.
    metrics = sidecar_stack.metrics_url("server-a")
    before = _spooled(metrics)
    claimed = {**ALICE, "X-MCP-Agent-ID": "mcp-runtime-live-inventory"}
    r = httpx2.post(sidecar_stack.url("server-a"), content=json.dumps(LIST), headers={**JSON, **claimed}, timeout=10)
    assert r.status_code < 500  # the sample server wants a session first (400); what matters is the audit
    deadline = time.monotonic() + 5
    while _spooled(metrics) <= before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _spooled(metrics) > before


# -- the attacks ------------------------------------------------------------------------------------------


async def test_a_captured_token_opens_only_its_own_server_and_only_briefly(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        async with httpx2.AsyncClient(timeout=10) as c:
            ok = await c.post(r.inventory, json=LIST, headers={**JSON, **r.token()})
            assert ok.status_code == 200 and ok.json()["result"]["tools"] == [{"name": "secret_tool"}], ok.text
            (_verb, path, _body, forwarded) = r.seen[-1]
            lowered = {k.lower() for k in forwarded}
            assert path == "/mcp" and TOKEN_HEADER.lower() not in lowered  # the token never reaches the server
            other_signer, _ = _keypair(tmp_path, "other")
            now = time.time()
            too_long = Signer(r.signer.key, ttl=MAX_LIFETIME + 60)
            cases: list[tuple[dict[str, str] | list[tuple[str, str]], str]] = [
                (r.token(NS, "server-b"), "wrong_server"),  # server B's token (captured by B's team) on A
                (r.token("team-b", "server-a"), "wrong_server"),  # same name, another namespace
                ({TOKEN_HEADER: other_signer.mint(NS, "server-a")}, "unknown_key"),  # not the API's key
                ({TOKEN_HEADER: r.signer.mint(NS, "server-a", now=now - DEFAULT_TTL - 30)}, "expired_token"),
                ({TOKEN_HEADER: too_long.mint(NS, "server-a")}, "lifetime_too_long"),
                ({}, "missing_token"),
                ({TOKEN_HEADER: ""}, "missing_token"),
                ({TOKEN_HEADER: "sentinel-local-inventory-token"}, "malformed_token"),  # the old shared secret
                ([(TOKEN_HEADER, r.signer.mint(NS, "server-a"))] * 2, "ambiguous_token"),
            ]
            for headers, reason in cases:
                resp = await c.post(r.inventory, json=LIST, headers=httpx2.Headers([*JSON.items(), *(
                    headers.items() if isinstance(headers, dict) else headers)]))
                assert resp.status_code == 401, (reason, resp.text)
                assert resp.json() == {"error": "inventory_unauthorized", "reason": reason}
        assert len(r.seen) == 1  # nothing refused reached the server
        text = httpx2.get(r.metrics, timeout=10).text
        assert 'mcp_gateway_inventory_requests_total{result="unauthorized"} 9.0' in text


async def test_a_tool_call_by_any_verb_or_encoding_never_reaches_the_server(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        before = _spooled(r.metrics)

        def attack(verb: str, body: Any, headers: dict[str, str]) -> httpx2.Response:
            return httpx2.request(verb, r.inventory, content=body, headers={**JSON, **r.token(), **headers}, timeout=10)

        for verb in ("POST", "PUT", "PATCH", "DELETE", "GET", "OPTIONS"):
            for body in (CALL, [LIST, CALL], {"jsonrpc": "2.0", "id": 3, "result": {}}):
                resp = await asyncio.to_thread(attack, verb, json.dumps(body), {})
                assert resp.status_code == 403, (verb, body, resp.text)
                assert resp.json()["error"] == "inventory_method_not_allowed"
        gz = await asyncio.to_thread(attack, "POST", gzip.compress(json.dumps(CALL).encode()),
                                     {"Content-Encoding": "gzip"})
        assert gz.status_code == 415 and gz.json()["error"] == "inventory_unsupported_encoding"
        bad = await asyncio.to_thread(attack, "POST", b"{not json", {})
        assert bad.status_code == 400 and bad.json()["error"] == "inventory_bad_request"
        # A listing by a verb other than POST, and a POST without a body: refused too.
        for verb, payload in (("PUT", json.dumps(LIST)), ("GET", json.dumps(LIST)), ("PATCH", json.dumps(LIST)),
                              ("POST", b""), ("OPTIONS", b"")):
            resp = await asyncio.to_thread(attack, verb, payload, {})
            assert resp.status_code == 405, (verb, resp.text)
        assert r.seen == []
        # GET (the SSE stream) and DELETE (session end) without a body are session mechanics: forwarded.
        for verb in ("GET", "DELETE"):
            resp = await asyncio.to_thread(attack, verb, b"", {})
            assert resp.status_code == 200, resp.text
        assert [v for v, *_ in r.seen] == ["GET", "DELETE"]

        # The property, over random verbs, method names, batches and encodings: nothing but a listing
        # (or body-less session mechanics) ever reaches the server.
        allowed = {"initialize", "notifications/initialized", "notifications/cancelled", "ping", "server/discover",
                   "tools/list", "prompts/list", "resources/list", "resources/templates/list"}
        method = st.one_of(st.sampled_from(["tools/call", "call_tool", "prompts/get", "resources/read",
                                            "sampling/createMessage", "completion/complete", *allowed]),
                           st.text(min_size=1, max_size=20))
        message = st.builds(
            lambda m, i: {"jsonrpc": "2.0", "id": i, "method": m, "params": {"name": "delete_document"}},
            method, st.integers(0, 99))
        shape = st.one_of(message, st.lists(message, min_size=1, max_size=4))
        verbs = st.sampled_from(["POST", "PUT", "PATCH", "DELETE", "GET", "OPTIONS"])
        encodings = st.sampled_from(["", "identity", "gzip", "deflate", "br", "zstd", "GZIP"])

        @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(verbs, shape, encodings)
        def prop(verb: str, body: Any, encoding: str) -> None:
            r.seen.clear()
            resp = attack(verb, json.dumps(body), {"Content-Encoding": encoding} if encoding else {})
            msgs = body if isinstance(body, list) else [body]
            listing = all(m["method"] in allowed for m in msgs)
            if resp.status_code == 200:
                assert verb == "POST" and listing and encoding in ("", "identity"), (verb, body, encoding)
            else:
                assert r.seen == [], (verb, body, encoding, resp.status_code)
            assert not r.executed_calls()

        await asyncio.to_thread(prop)
        assert _spooled(r.metrics) > before  # refusals are audited (spooled before the answer is sent)


async def test_the_public_port_has_no_inventory_path(tmp_path: Path) -> None:
    async with rig(tmp_path) as r, httpx2.AsyncClient(timeout=10) as c:
        for path in ("/.sentinel/inventory", "/.sentinel/inventory/", "/.sentinel/inventory/mcp"):
            for verb in ("POST", "GET", "DELETE"):
                body = json.dumps(LIST) if verb == "POST" else None
                resp = await c.request(verb, r.public + path, content=body, headers={**JSON, **r.token(), **ALICE})
                assert resp.status_code == 404, (verb, path, resp.text)
        assert r.seen == []


async def test_without_keys_there_is_no_listener_and_a_shared_token_is_refused(tmp_path: Path) -> None:
    ports = Ports.free()
    base = {"PORT": str(ports.sidecar_a), "METRICS_PORT": str(ports.sidecar_a_metrics), "LISTEN_HOST": "127.0.0.1",
            "INVENTORY_PORT": str(ports.sidecar_a_inventory), "UPSTREAM_URL": f"http://127.0.0.1:{ports.sample_mcp}",
            "POLICY_FILE": str(POLICY)}
    off = await asyncio.to_thread(SidecarProcess, base, tmp_path / "off.log")
    try:
        with pytest.raises(httpx2.ConnectError):
            httpx2.post(f"http://127.0.0.1:{ports.sidecar_a_inventory}/.sentinel/inventory/mcp", json=LIST, timeout=5)
        r = httpx2.post(f"http://127.0.0.1:{ports.sidecar_a}/.sentinel/inventory/mcp", json=LIST, timeout=5)
        assert r.status_code == 404
    finally:
        off.stop()
    _signer, public = _keypair(tmp_path)
    named = {**base, "MCP_SERVER_NAMESPACE": NS, "MCP_SERVER_NAME": "server-a"}
    refused = [
        ({**base, "INVENTORY_TOKEN": "s3cret"}, "INVENTORY_TOKEN"),
        ({**base, "INVENTORY_PUBLIC_KEYS_FILE": str(public)}, "MCP_SERVER_NAMESPACE and MCP_SERVER_NAME"),
        ({**named, "INVENTORY_PUBLIC_KEYS_FILE": str(tmp_path / "missing.pem")}, "cannot read inventory key file"),
        ({**named, "INVENTORY_PUBLIC_KEYS_FILE": str(POLICY)}, "holds no PEM public key"),
    ]
    for i, (env, message) in enumerate(refused):
        with pytest.raises(RuntimeError, match=re.escape(message)):
            await asyncio.to_thread(SidecarProcess, env, tmp_path / f"refused-{i}.log")


# -- the token itself -----------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_forged_and_confused_tokens_are_rejected(tmp_path: Path) -> None:
    signer, public = _keypair(tmp_path)
    keys = load_verify_keys(str(public))
    (kid,) = keys
    assert kid == signer.kid == key_id(signer.key.public_key())
    good = signer.mint(NS, "srv")
    assert verify(good, keys, NS, "srv")["aud"] == audience(NS, "srv")
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": audience(NS, "srv"), "iat": now, "exp": now + 30}
    raw_public = public.read_bytes()

    def rejected(token: str, reason: str) -> None:
        with pytest.raises(TokenRejected) as caught:
            verify(token, keys, NS, "srv")
        assert caught.value.reason == reason, token

    header, payload, sig = good.split(".")
    rejected(f"{header}.{payload}.{_b64(b'x' * 64)}", "invalid_token")  # forged signature
    tampered = _b64(json.dumps({**claims, "aud": audience(NS, "srv")}).encode())
    rejected(f"{header}.{tampered}.{sig}", "invalid_token")  # claims swapped under a real signature
    # alg confusion: HS256 keyed with the (public) PEM, and alg none.
    hs_header = _b64(json.dumps({"alg": "HS256", "kid": kid, "typ": TYP}).encode())
    hs_signing_input = f"{hs_header}.{_b64(json.dumps(claims).encode())}"
    hs_sig = _b64(hmac.new(raw_public, hs_signing_input.encode(), hashlib.sha256).digest())
    rejected(f"{hs_signing_input}.{hs_sig}", "wrong_token_type")
    rejected(f"{_b64(json.dumps({'alg': 'none', 'kid': kid, 'typ': TYP}).encode())}."
             f"{_b64(json.dumps(claims).encode())}.", "wrong_token_type")
    # Another token type of the platform signed with the same key is not an inventory token.
    rejected(jwt.encode(claims, signer.key, algorithm="EdDSA", headers={"kid": kid}), "wrong_token_type")
    # An audience list naming this server among others, or no audience at all.
    rejected(jwt.encode({**claims, "aud": [audience(NS, "srv"), audience(NS, "other")]}, signer.key,
                        algorithm="EdDSA", headers={"kid": kid, "typ": TYP}), "wrong_server")
    no_aud = {k: v for k, v in claims.items() if k != "aud"}
    rejected(jwt.encode(no_aud, signer.key, algorithm="EdDSA", headers={"kid": kid, "typ": TYP}), "invalid_token")
    rejected(jwt.encode({**claims, "iss": "someone"}, signer.key, algorithm="EdDSA",
                        headers={"kid": kid, "typ": TYP}), "invalid_token")
    rejected(jwt.encode({**claims, "iat": now + 600, "exp": now + 630}, signer.key, algorithm="EdDSA",
                        headers={"kid": kid, "typ": TYP}), "expired_token")  # not valid yet
    rejected("a.b", "malformed_token")
    # Rotation: a file holding the old and the new key verifies both.
    new_signer, new_public = _keypair(tmp_path, "new")
    both = tmp_path / "both.pem"
    both.write_bytes(raw_public + new_public.read_bytes())
    ring = load_verify_keys(str(both))
    assert verify(good, ring, NS, "srv") and verify(new_signer.mint(NS, "srv"), ring, NS, "srv")


@given(st.text(max_size=200))
def test_arbitrary_strings_never_verify(token: str) -> None:
    keys = {"k": Ed25519PrivateKey.generate().public_key()}
    with pytest.raises(TokenRejected):
        verify(token, keys, NS, "srv")


def test_the_key_file_is_reread_on_change_and_a_broken_one_keeps_the_previous_keys(tmp_path: Path) -> None:
    from sidecar.inventory import KeyRing

    old, public = _keypair(tmp_path, "old")
    ring = KeyRing(str(public))
    assert set(ring.current()) == {old.kid}
    new, new_public = _keypair(tmp_path, "new")
    public.write_bytes(public.read_bytes() + new_public.read_bytes())  # rotation: both keys for a while
    ring._checked -= 10  # as if the check interval had passed
    assert set(ring.current()) == {old.kid, new.kid}
    public.write_text("half-written")
    ring._checked -= 10
    assert set(ring.current()) == {old.kid, new.kid}  # kept
    public.write_bytes(new_public.read_bytes())
    ring._checked -= 10
    assert set(ring.current()) == {new.kid}
