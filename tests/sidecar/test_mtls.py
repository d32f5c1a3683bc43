"""mTLS mode (upstream §3.11): TLS with verified client certificates on the proxy port, identity
from the ingress-verified SPIFFE ID, hot certificate reload. Real sidecar processes, real TLS
handshakes, certificates generated per test run."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import socket
import ssl
import time
from pathlib import Path
from typing import Any

import httpx2
import pytest
from aiohttp import web

from localstack.config import Ports
from mcp_sentinel.policy import AuthBlock, SessionBinding, compute_revision, parse_document, to_pretty_json
from mcp_sentinel.policy.evaluate import CompiledPolicy
from sidecar.mtls import parse_spiffe
from sidecar.settings import SettingsError, SidecarSettings
from tests.fixtures.pki import Pki
from tests.fixtures.sidecar import SidecarProcess, serve_app

POLICY = Path(__file__).resolve().parents[2] / "examples" / "policies" / "server-a.json"
DOMAIN = "example.org"
INGRESS_ID = f"spiffe://{DOMAIN}/ns/ingress/sa/gateway"
SPIFFE_HEADER = "X-MCP-Verified-SPIFFE-ID"


# -- the policy and the upstream -----------------------------------------------------------------


def _policy(path: Path) -> None:
    doc = parse_document(POLICY.read_bytes())
    sessions = (
        *doc.sessions,  # sess-alice-a in mcp-servers: alice / workspace-agent
        SessionBinding(name="sess-revoked", namespace="mcp-servers", human_id="alice", agent_id="workspace-agent",
                       revoked=True),
        SessionBinding(name="sess-old", namespace="mcp-servers", human_id="alice", agent_id="workspace-agent",
                       expires_at="2020-01-01T00:00:00Z"),
        # The same session name in two namespaces: the SPIFFE ID's namespace decides.
        SessionBinding(name="sess-shared", namespace="team-a", human_id="alice", agent_id="workspace-agent"),
        SessionBinding(name="sess-shared", namespace="team-b", human_id="bob", agent_id="other-agent"),
    )
    doc = dataclasses.replace(doc, auth=AuthBlock(mode="mtls", trust_domain=DOMAIN), sessions=sessions, revision="")
    path.write_text(to_pretty_json(dataclasses.replace(doc, revision=compute_revision(doc))))


async def _upstream(port: int) -> web.AppRunner:
    async def echo(request: web.Request) -> web.Response:
        body = await request.json()
        seen = {k: request.headers.get(k, "") for k in ("X-MCP-Human-ID", "X-MCP-Agent-ID", "X-MCP-Agent-Session")}
        return web.json_response({"jsonrpc": "2.0", "id": body.get("id"), "result": {"seen": seen}})

    app = web.Application()
    app.router.add_post("/mcp", echo)
    return await serve_app(app, port)


def _env(ports: Ports, policy: Path, **extra: str) -> dict[str, str]:
    return {
        "PORT": str(ports.sidecar_a),
        "METRICS_PORT": str(ports.sidecar_a_metrics),
        "LISTEN_HOST": "127.0.0.1",
        "UPSTREAM_URL": f"http://127.0.0.1:{ports.sample_mcp}",
        "POLICY_FILE": str(policy),
        **extra,
    }


def _rpc(method: str, **params: Any) -> str:
    return json.dumps({"jsonrpc": "2.0", "id": 7, "method": method, "params": params})


def _spiffe(ns: str, session: str) -> str:
    return f"spiffe://{DOMAIN}/ns/{ns}/session/{session}"


async def _post(base: str, ctx: ssl.SSLContext | None, headers: dict[str, str] | list[tuple[str, str]],
                body: str) -> httpx2.Response:
    hdrs = httpx2.Headers(headers)
    hdrs["Content-Type"] = "application/json"
    async with httpx2.AsyncClient(verify=ctx or True, timeout=30) as c:
        return await c.post(f"{base}/mcp", content=body, headers=hdrs)


def _reason(resp: httpx2.Response) -> str:
    data: dict[str, Any] = resp.json()["error"]["data"]
    return str(data["reason"])


def _server_cn(port: int, ctx: ssl.SSLContext) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
            ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        cert = tls.getpeercert()
    assert cert is not None
    return str(dict(x[0] for x in cert["subject"])["commonName"])


# -- the tests -------------------------------------------------------------------------------------


async def test_mtls_identity_statuses_and_reasons(tmp_path: Path) -> None:
    pki = Pki.create(tmp_path)
    server = pki.leaf("sidecar", server=True)
    ingress = pki.leaf("ingress", uris=(INGRESS_ID,))
    stranger = pki.leaf("stranger", uris=(f"spiffe://{DOMAIN}/ns/other/sa/x",))
    ports = Ports.free()
    _policy(tmp_path / "p.json")
    upstream = await _upstream(ports.sample_mcp)
    env = _env(ports, tmp_path / "p.json", TLS_CERT_FILE=str(server[0]), TLS_KEY_FILE=str(server[1]),
               TLS_CLIENT_CA_FILE=str(pki.ca_file), TRUSTED_PROXY_SPIFFE_ID=INGRESS_ID)
    ingress_ctx = pki.client_context(ingress)
    sc = await asyncio.to_thread(SidecarProcess, env, tmp_path / "sc.log", ingress_ctx)
    base = f"https://127.0.0.1:{ports.sidecar_a}"
    call = _rpc("tools/call", name="search", arguments={})
    try:
        # Allowed: the identity is the binding's; the client's own governance headers are ignored.
        spoof = {"X-MCP-Human-ID": "mallory", "X-MCP-Agent-ID": "evil", "X-MCP-Agent-Session": "sess-alice-a"}
        ok = await _post(base, ingress_ctx, {**spoof, SPIFFE_HEADER: _spiffe("mcp-servers", "sess-alice-a")}, call)
        assert ok.status_code == 200, ok.text
        assert ok.json()["result"]["seen"] == {
            "X-MCP-Human-ID": "alice", "X-MCP-Agent-ID": "workspace-agent", "X-MCP-Agent-Session": "sess-alice-a"}
        # Percent-encoded segments are decoded.
        encoded = await _post(base, ingress_ctx, {SPIFFE_HEADER: _spiffe("mcp%2Dservers", "sess-alice-a")}, call)
        assert encoded.status_code == 200, encoded.text
        # The SPIFFE ID's namespace picks the binding among same-named sessions.
        for ns, human in (("team-a", "alice"), ("team-b", "bob")):
            seen = await _post(base, ingress_ctx, {SPIFFE_HEADER: _spiffe(ns, "sess-shared")}, _rpc("ping"))
            assert seen.status_code == 200, seen.text
            assert seen.json()["result"]["seen"]["X-MCP-Human-ID"] == human

        cases: list[tuple[Any, str]] = [
            ({}, "missing_verified_identity"),
            ({SPIFFE_HEADER: ""}, "missing_verified_identity"),
            ([(SPIFFE_HEADER, _spiffe("mcp-servers", "sess-alice-a"))] * 2, "ambiguous_spiffe_identity"),
            ({SPIFFE_HEADER: "spiffe://evil.example/ns/mcp-servers/session/sess-alice-a"}, "invalid_spiffe_identity"),
            ({SPIFFE_HEADER: _spiffe("mcp-servers", "sess-alice-a") + "/extra"}, "invalid_spiffe_identity"),
            ({SPIFFE_HEADER: _spiffe("mcp-servers", "sess-alice-a") + "?x=1"}, "invalid_spiffe_identity"),
            ({SPIFFE_HEADER: "https://example.org/ns/mcp-servers/session/sess-alice-a"}, "invalid_spiffe_identity"),
            ({SPIFFE_HEADER: _spiffe("mcp-servers", "nobody")}, "session_not_found"),
            ({SPIFFE_HEADER: _spiffe("elsewhere", "sess-alice-a")}, "session_not_found"),
            ({SPIFFE_HEADER: _spiffe("mcp-servers", "sess-revoked")}, "session_revoked"),
            ({SPIFFE_HEADER: _spiffe("mcp-servers", "sess-old")}, "session_expired"),
        ]
        for headers, reason in cases:
            resp = await _post(base, ingress_ctx, headers, call)
            assert resp.status_code == 401, (headers, resp.text)
            assert _reason(resp) == reason, headers
            assert resp.json()["error"]["data"]["client_certificate_required"] is True
        # Authenticated, then the evaluator still decides the tool call.
        denied = await _post(base, ingress_ctx, {SPIFFE_HEADER: _spiffe("mcp-servers", "sess-alice-a")},
                             _rpc("tools/call", name="delete_document", arguments={}))
        assert denied.status_code == 403 and _reason(denied) == "tool_not_granted"
        assert "client_certificate_required" not in denied.json()["error"]["data"]

        # A verified client certificate that is not the pinned ingress's.
        untrusted = await _post(base, pki.client_context(stranger),
                                {SPIFFE_HEADER: _spiffe("mcp-servers", "sess-alice-a")}, call)
        assert untrusted.status_code == 401 and _reason(untrusted) == "untrusted_proxy"
        # No client certificate, or one from another CA: no TLS session at all.
        (tmp_path / "other").mkdir()
        other_ca = Pki.create(tmp_path / "other", "other-ca")
        foreign = other_ca.leaf("foreign", uris=(INGRESS_ID,))
        foreign_ctx = pki.client_context(None)
        foreign_ctx.load_cert_chain(str(foreign[0]), str(foreign[1]))
        for ctx in (pki.client_context(None), foreign_ctx):
            with pytest.raises(httpx2.TransportError):
                await _post(base, ctx, {SPIFFE_HEADER: _spiffe("mcp-servers", "sess-alice-a")}, call)
    finally:
        sc.stop()
        await upstream.cleanup()


async def test_mtls_policy_without_tls_refuses_every_request(tmp_path: Path) -> None:
    ports = Ports.free()
    _policy(tmp_path / "p.json")
    upstream = await _upstream(ports.sample_mcp)
    env = _env(ports, tmp_path / "p.json", TRUSTED_PROXY_SPIFFE_ID=INGRESS_ID)
    sc = await asyncio.to_thread(SidecarProcess, env, tmp_path / "sc.log")
    try:
        # Plain HTTP: nothing vouches for the header, so even a well-formed one is refused.
        for body in (_rpc("tools/call", name="search", arguments={}), _rpc("ping")):
            resp = await _post(f"http://127.0.0.1:{ports.sidecar_a}", None,
                               {SPIFFE_HEADER: _spiffe("mcp-servers", "sess-alice-a"), "X-MCP-Human-ID": "alice"},
                               body)
            assert resp.status_code == 401, resp.text
            assert _reason(resp) == "missing_client_certificate"
            assert resp.json()["error"]["data"]["client_certificate_required"] is True
    finally:
        sc.stop()
        await upstream.cleanup()


async def test_certificate_rotation_is_picked_up_and_a_broken_one_is_not(tmp_path: Path) -> None:
    pki = Pki.create(tmp_path)
    server = pki.leaf("sidecar", server=True)
    ingress_ctx = pki.client_context(pki.leaf("ingress", uris=(INGRESS_ID,)))
    ports = Ports.free()
    _policy(tmp_path / "p.json")
    upstream = await _upstream(ports.sample_mcp)
    env = _env(ports, tmp_path / "p.json", TLS_CERT_FILE=str(server[0]), TLS_KEY_FILE=str(server[1]),
               TLS_CLIENT_CA_FILE=str(pki.ca_file), TLS_RELOAD_INTERVAL="0.1", TRUSTED_PROXY_SPIFFE_ID=INGRESS_ID)
    sc = await asyncio.to_thread(SidecarProcess, env, tmp_path / "sc.log", ingress_ctx)
    metrics = f"http://127.0.0.1:{ports.sidecar_a_metrics}/metrics"
    try:
        assert _server_cn(ports.sidecar_a, ingress_ctx) == "sidecar"
        # A half-written rotation (garbage certificate): logged and counted, the old pair keeps serving.
        server[0].write_text("not a certificate")
        deadline = time.monotonic() + 10
        while 'mcp_gateway_tls_reloads_total{result="error"} 1.0' not in httpx2.get(metrics, timeout=5).text:
            assert time.monotonic() < deadline, "the failed reload was not counted"
            await asyncio.sleep(0.1)
        assert _server_cn(ports.sidecar_a, ingress_ctx) == "sidecar"
        # The real rotation: new handshakes get the new certificate.
        rotated = pki.leaf("sidecar-rotated", server=True)
        server[1].write_bytes(rotated[1].read_bytes())
        server[0].write_bytes(rotated[0].read_bytes())
        deadline = time.monotonic() + 10
        while _server_cn(ports.sidecar_a, ingress_ctx) != "sidecar-rotated":
            assert time.monotonic() < deadline, "the rotated certificate was not loaded"
            await asyncio.sleep(0.1)
        assert 'mcp_gateway_tls_reloads_total{result="success"}' in httpx2.get(metrics, timeout=5).text
        ok = await _post(f"https://127.0.0.1:{ports.sidecar_a}", ingress_ctx,
                         {SPIFFE_HEADER: _spiffe("mcp-servers", "sess-alice-a")}, _rpc("ping"))
        assert ok.status_code == 200, ok.text
    finally:
        sc.stop()
        await upstream.cleanup()


async def test_mtls_policy_without_a_trusted_proxy_id_stops_the_sidecar_at_start(tmp_path: Path) -> None:
    # Without the pin, any certificate the CA signed (any workload of the mesh) could claim any identity.
    pki = Pki.create(tmp_path)
    server = pki.leaf("sidecar", server=True)
    ports = Ports.free()
    _policy(tmp_path / "p.json")
    env = _env(ports, tmp_path / "p.json", TLS_CERT_FILE=str(server[0]), TLS_KEY_FILE=str(server[1]),
               TLS_CLIENT_CA_FILE=str(pki.ca_file))
    with pytest.raises(RuntimeError, match="auth.mode mtls needs TRUSTED_PROXY_SPIFFE_ID"):
        await asyncio.to_thread(SidecarProcess, env, tmp_path / "sc.log", pki.client_context(None))


async def test_a_reload_switching_to_mtls_without_a_trusted_proxy_id_is_refused(tmp_path: Path) -> None:
    # The mode arrives with the hot-reloaded policy: a switch to mtls the process cannot pin is refused,
    # the previous policy stays active, and the refusal is counted and reported.
    pki = Pki.create(tmp_path)
    server = pki.leaf("sidecar", server=True)
    stranger = pki.client_context(pki.leaf("stranger", uris=(f"spiffe://{DOMAIN}/ns/other/sa/x",)))
    ports = Ports.free()
    policy = tmp_path / "p.json"
    policy.write_bytes(POLICY.read_bytes())  # header mode
    upstream = await _upstream(ports.sample_mcp)
    env = _env(ports, policy, TLS_CERT_FILE=str(server[0]), TLS_KEY_FILE=str(server[1]),
               TLS_CLIENT_CA_FILE=str(pki.ca_file), POLICY_POLL_INTERVAL="0.05")
    sc = await asyncio.to_thread(SidecarProcess, env, tmp_path / "sc.log", stranger)
    base = f"https://127.0.0.1:{ports.sidecar_a}"
    status_url = f"{base}/.sentinel/config/status"
    try:
        async with httpx2.AsyncClient(verify=stranger, timeout=10) as c:
            before = (await c.get(status_url)).json()
            _policy(policy)
            deadline = time.monotonic() + 10
            while (status := (await c.get(status_url)).json())["reload_failures"] < 1:
                assert time.monotonic() < deadline, "the refused reload was not counted"
                await asyncio.sleep(0.05)
        assert "TRUSTED_PROXY_SPIFFE_ID" in status["last_reload_error"]
        assert status["revision"] == before["revision"]  # the header-mode policy is still the active one
        # Any certificate of the CA plus a SPIFFE header: no identity comes from it (the call is not allowed).
        resp = await _post(base, stranger, {SPIFFE_HEADER: _spiffe("mcp-servers", "sess-alice-a")},
                           _rpc("tools/call", name="search", arguments={}))
        assert resp.status_code in (401, 403), resp.text
        assert _reason(resp) in ("missing_identity", "missing_session"), resp.text
        metrics = httpx2.get(f"http://127.0.0.1:{ports.sidecar_a_metrics}/metrics", timeout=5).text
        assert 'mcp_gateway_policy_reloads_total{result="error"} 1.0' in metrics, metrics
    finally:
        sc.stop()
        await upstream.cleanup()


def test_tls_settings_come_as_a_set_and_the_proxy_pin_is_a_spiffe_id() -> None:
    base = {"UPSTREAM_URL": "http://127.0.0.1:9"}
    with pytest.raises(SettingsError, match="must be set together"):
        SidecarSettings.from_env({**base, "TLS_CERT_FILE": "/c.pem", "TLS_KEY_FILE": "/k.pem"})
    with pytest.raises(SettingsError, match="TRUSTED_PROXY_SPIFFE_ID"):
        SidecarSettings.from_env({**base, "TRUSTED_PROXY_SPIFFE_ID": "https://ingress"})
    s = SidecarSettings.from_env({**base, "TLS_CERT_FILE": "/c", "TLS_KEY_FILE": "/k", "TLS_CLIENT_CA_FILE": "/ca",
                                  "VERIFIED_SPIFFE_HEADER": "X-Client-ID"})
    assert s.tls_enabled and s.verified_spiffe_header == "X-Client-ID" and s.tls_reload_interval == 60.0


def test_unreadable_tls_files_stop_the_sidecar_at_start(tmp_path: Path) -> None:
    ports = Ports.free()
    env = _env(ports, tmp_path / "p.json", TLS_CERT_FILE=str(tmp_path / "missing.crt"),
               TLS_KEY_FILE=str(tmp_path / "missing.key"), TLS_CLIENT_CA_FILE=str(tmp_path / "ca.pem"))
    with pytest.raises(RuntimeError, match="cannot load TLS files"):
        SidecarProcess(env, tmp_path / "sc.log")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("spiffe://example.org/ns/a/session/s", ("a", "s")),
        ("SPIFFE://EXAMPLE.ORG/ns/a/session/s", ("a", "s")),
        ("spiffe://example.org/ns/a%20b/session/s%2Dx", ("a b", "s-x")),
        ("spiffe://example.org/NS/a/session/s", None),
        ("spiffe://example.org/ns/a/sessions/s", None),
        ("spiffe://example.org/ns//session/s", None),
        ("spiffe://example.org/ns/a/session/", None),
        ("spiffe://example.org/ns/a%2Fb/session/s", None),
        ("spiffe://example.org:443/ns/a/session/s", None),
        ("spiffe://user@example.org/ns/a/session/s", None),
        ("spiffe://example.org/ns/a/session/s#f", None),
        ("spiffe://example.org/ns/a/session/s?", None),
        ("spiffe://example.org.evil/ns/a/session/s", None),
        ("spiffe://[::1/ns/a/session/s", None),
        ("", None),
    ],
)
def test_spiffe_id_shape(value: str, expected: tuple[str, str] | None) -> None:
    assert parse_spiffe(value, "Example.org") == expected


def test_no_trust_domain_accepts_nothing() -> None:
    assert parse_spiffe("spiffe://example.org/ns/a/session/s", "") is None


def test_session_binding_lookup_by_namespace_and_name() -> None:
    doc = parse_document(POLICY.read_bytes())
    doc = dataclasses.replace(doc, sessions=(
        SessionBinding(name="s", namespace="a", human_id="h1", expires_at="not a time"),
        SessionBinding(name="s", namespace="b", human_id="h2", expires_at="2099-01-01T00:00:00Z"),
    ))
    policy = CompiledPolicy(doc)
    now = time.time()
    found_a, found_b = policy.session_binding("a", "s", now), policy.session_binding("b", "s", now)
    assert found_a is not None and found_a[0].human_id == "h1" and found_a[1] is True  # unparseable: expired
    assert found_b is not None and found_b[0].human_id == "h2" and found_b[1] is False
    assert policy.session_binding("c", "s", now) is None
