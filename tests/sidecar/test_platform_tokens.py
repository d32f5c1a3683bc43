"""`auth.mode: platform` through real sidecars in front of the real sample MCP server.

The tokens are minted by the API's own issuer code (functions/api/agent_tokens.py) with a real
P-256 key; the JWKS is served over HTTP the way the API serves it. Two gateways guard server-a and
server-b, each bound to its own canonical URL, so every cross-server case is a real refusal.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from functions.api.agent_tokens import AgentTokenIssuer, generate_pem, load_key
from localstack.config import REPO_ROOT, Ports, StackConfig
from localstack.parts import sample_mcp
from localstack.supervisor import Supervisor
from mcp_sentinel.policy import AuthBlock, compute_revision, parse_document, to_pretty_json
from mcp_sentinel.policy.document import PolicyDocument
from tests.fixtures.sidecar import SidecarProcess, mcp_client

POLICIES = REPO_ROOT / "examples" / "policies"
PUBLIC = "https://sentinel.example.com"
RESOURCE = {"server-a": f"{PUBLIC}/server-a/mcp", "server-b": f"{PUBLIC}/server-b/mcp"}
SESSION = {"server-a": ("alice", "sess-alice-a"), "server-b": ("bob", "sess-bob-b")}
AGENT = "workspace-agent"
NS = "mcp-servers"
JSON = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}


class _Jwks:
    """The API's JWKS endpoint stand-in, served by a background loop; `keys` can be swapped (rotation)."""

    def __init__(self, issuer: AgentTokenIssuer, port: int) -> None:
        self.issuer = issuer
        self.hits = 0
        self.port = port
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.runner: web.AppRunner | None = None
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(30)

    async def _start(self) -> None:
        async def jwks(_r: web.Request) -> web.Response:
            self.hits += 1
            return web.json_response(self.issuer.jwks())

        app = web.Application()
        app.router.add_get("/api/.well-known/jwks.json", jwks)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    def close(self) -> None:
        assert self.runner is not None
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@dataclass
class Rig:
    """Sample server, JWKS endpoint, and platform-mode gateways for server-a and server-b."""

    ports: Ports
    issuer: AgentTokenIssuer
    jwks: _Jwks
    policy_files: dict[str, Path]
    urls: dict[str, str]
    tmp: Path

    def token(self, target: str = "server-a", **over: Any) -> str:
        """A token minted by the API's issuer for `target`'s seeded session; `over` replaces mint arguments."""
        human, sid = SESSION[target]
        base: dict[str, Any] = {"human": human, "agent": AGENT, "team": "", "session": sid,
                                "session_namespace": NS, "server": f"{NS}/{target}", "audience": RESOURCE[target]}
        base.update(over)
        return self.issuer.mint(**base)[0]

    def claims(self, server: str = "server-a", **over: Any) -> dict[str, Any]:
        """Claims of a valid token, for hand-signed variants."""
        human, sid = SESSION[server]
        now = int(time.time())
        c: dict[str, Any] = {"iss": self.issuer.issuer, "aud": RESOURCE[server], "sub": human, "azp": AGENT,
                             "sid": sid, "sns": NS, "srv": f"{NS}/{server}", "iat": now, "nbf": now,
                             "exp": now + 300}  # fmt: skip
        c.update(over)
        return {k: v for k, v in c.items() if v is not None}

    def set_policy(self, server: str, doc: PolicyDocument) -> None:
        doc = dataclasses.replace(doc, revision="")
        doc = dataclasses.replace(doc, revision=compute_revision(doc))
        path = self.policy_files[server]
        tmp = path.with_suffix(".tmp")
        tmp.write_text(to_pretty_json(doc))
        tmp.replace(path)

    def policy(self, server: str) -> PolicyDocument:
        return parse_document(self.policy_files[server].read_bytes())


def _doc(server: str) -> PolicyDocument:
    doc = parse_document((POLICIES / f"{server}.json").read_bytes())
    return dataclasses.replace(doc, auth=AuthBlock(mode="platform", resource=RESOURCE[server]))


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    tmp = tmp_path_factory.mktemp("platform-rig")
    ports = Ports.free()
    cfg = StackConfig(data_dir=tmp, ports=ports)
    issuer = AgentTokenIssuer(f"{PUBLIC}/api", (load_key("k1", generate_pem()),), ttl=600)
    jwks = _Jwks(issuer, ports.api)
    sup = Supervisor(cfg)
    procs: list[SidecarProcess] = []
    try:
        sup.start_all(sample_mcp.components(cfg))
        files = {s: tmp / f"{s}.json" for s in RESOURCE}
        r = Rig(ports, issuer, jwks, files, {}, tmp)
        for server, port, mport in (("server-a", ports.sidecar_a, ports.sidecar_a_metrics),
                                    ("server-b", ports.sidecar_b, ports.sidecar_b_metrics)):
            r.set_policy(server, _doc(server))
            env = {
                "PORT": str(port), "METRICS_PORT": str(mport), "LISTEN_HOST": "127.0.0.1",
                "UPSTREAM_URL": cfg.url("sample_mcp"), "POLICY_FILE": str(files[server]),
                "PLATFORM_TOKEN_ISSUER": issuer.issuer,
                "PLATFORM_JWKS_URL": f"http://127.0.0.1:{ports.api}/api/.well-known/jwks.json",
                "POLICY_POLL_INTERVAL": "0.2",
            }  # fmt: skip
            procs.append(SidecarProcess(env, tmp / f"{server}.log"))
            r.urls[server] = f"http://127.0.0.1:{port}/mcp"
        yield r
    finally:
        for p in procs:
            p.stop()
        sup.stop_all()
        jwks.close()


# Modern-era (stateless) calls: the sample server needs no initialize handshake for these.
_META = {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}


def _call(tool: str = "read_document", rid: int = 1) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": rid, "method": "tools/call",
                       "params": {"name": tool, "arguments": {"title": "welcome"}, "_meta": _META}}).encode()


def _post(url: str, token: str | None, body: bytes | None = None, **headers: str) -> httpx2.Response:
    body = body or _call()
    sent = json.loads(body)
    h = {**JSON, "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": sent["method"], "Mcp-Name": sent["params"]["name"],
         **headers}
    if token is not None:
        h["Authorization"] = f"Bearer {token}"
    return httpx2.post(url, content=body, headers=h, timeout=30)


def _assert_refused(resp: httpx2.Response, server: str, reason: str, status: int = 401) -> None:
    assert resp.status_code == status, resp.text
    assert resp.json()["error"]["data"]["reason"] == reason, resp.text
    if status == 401:
        challenge = resp.headers["WWW-Authenticate"]
        meta = f"{PUBLIC}/{server}/.well-known/oauth-protected-resource/mcp"
        assert f'resource_metadata="{meta}"' in challenge, challenge
        assert ('error="invalid_token"' in challenge) == (reason != "missing_bearer_token"), challenge


def test_valid_token_calls_and_identity_comes_from_the_token(rig: Rig) -> None:
    spoof = {"X-MCP-Human-ID": "mallory", "X-MCP-Agent-Session": "sess-x"}
    r = _post(rig.urls["server-a"], rig.token(), None, **spoof)
    assert r.status_code == 200, r.text
    assert "Welcome to the workspace" in r.text
    # A tool alice's grant does not cover is still decided by the policy, with the token's identity.
    denied = _post(rig.urls["server-a"], rig.token(), _call("delete_document"))
    assert denied.status_code == 403 and denied.json()["error"]["data"]["reason"] == "tool_not_granted"


def test_cross_server_platform_token_is_refused(rig: Rig) -> None:
    """A token minted for server-b (its audience, its server, bob's live session there) opens nothing on server-a."""
    for_b = rig.token("server-b")
    assert _post(rig.urls["server-b"], for_b).status_code == 200
    _assert_refused(_post(rig.urls["server-a"], for_b), "server-a", "invalid_token")
    # Right audience but the other server's name, or the other server's audience with this one's name.
    _assert_refused(_post(rig.urls["server-a"], rig.token(server=f"{NS}/server-b")), "server-a", "invalid_token")
    _assert_refused(_post(rig.urls["server-a"], rig.token(audience=RESOURCE["server-b"])), "server-a", "invalid_token")
    # Alice's session on server-a named in a token for server-b is no use on server-b either.
    _assert_refused(_post(rig.urls["server-b"], rig.token(audience=RESOURCE["server-b"], server=f"{NS}/server-b")),
                    "server-b", "session_not_found")


def _sign(claims: dict[str, Any], key: Any, alg: str, kid: str | None = "k1") -> str:
    return jwt.encode(claims, key, algorithm=alg, headers={"kid": kid} if kid is not None else {})


def test_forged_expired_and_malformed_tokens_are_refused(rig: Rig) -> None:
    url = rig.urls["server-a"]
    signer = rig.issuer.keys[-1].private
    public_pem = signer.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    good = _sign(rig.claims(), signer, "ES256")
    assert _post(url, good).status_code == 200
    now = int(time.time())
    head, body, sig = good.split(".")
    other_body = base64.urlsafe_b64encode(json.dumps(rig.claims(sub="mallory")).encode()).rstrip(b"=").decode()
    cases: list[tuple[str, str]] = [
        ("expired", _sign(rig.claims(exp=now - 60, iat=now - 600, nbf=now - 600), signer, "ES256")),
        ("not yet valid", _sign(rig.claims(nbf=now + 600), signer, "ES256")),
        ("wrong issuer", _sign(rig.claims(iss="https://evil.example/api"), signer, "ES256")),
        ("audience list", _sign(rig.claims(aud=[RESOURCE["server-a"], RESOURCE["server-b"]]), signer, "ES256")),
        ("no session", _sign(rig.claims(sid=None), signer, "ES256")),
        ("no server", _sign(rig.claims(srv=None), signer, "ES256")),
        ("too long-lived", _sign(rig.claims(exp=now + 7200), signer, "ES256")),
        ("wrong kid", _sign(rig.claims(), signer, "ES256", kid="k-unknown")),
        ("no kid", _sign(rig.claims(), signer, "ES256", kid=None)),
        ("alg none", jwt.encode(rig.claims(), None, algorithm="none", headers={"kid": "k1"})),  # type: ignore[arg-type]
        ("HS256 with the public key", _hs256(rig.claims(), public_pem)),
        ("another P-256 key", _sign(rig.claims(), ec.generate_private_key(ec.SECP256R1()), "ES256")),
        ("an Ed25519 key", _sign(rig.claims(), ed25519.Ed25519PrivateKey.generate(), "EdDSA")),
        ("RS256", _sign(rig.claims(), rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS256")),
        ("tampered payload", f"{head}.{other_body}.{sig}"),
        ("tampered signature", f"{head}.{body}.{sig[:-4]}AAAA"),
        ("garbage", "not-a-jwt"),
    ]
    for label, tok in cases:
        resp = _post(url, tok)
        assert resp.status_code == 401, (label, resp.text)
        _assert_refused(resp, "server-a", "invalid_token")
    _assert_refused(_post(url, None), "server-a", "missing_bearer_token")
    _assert_refused(_post(url, None, Authorization="Basic YWxpY2U6cHc="), "server-a", "missing_bearer_token")


def _hs256(claims: dict[str, Any], secret: bytes) -> str:
    """HS256 signed with the public key as the HMAC secret (PyJWT refuses to do this; so do we, by hand)."""
    import hashlib
    import hmac

    def b64(b: bytes) -> str:
        return base64.urlsafe_b64encode(b).rstrip(b"=").decode()

    header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "k1"}).encode())
    signing = f"{header}.{b64(json.dumps(claims).encode())}"
    return f"{signing}.{b64(hmac.new(secret, signing.encode(), hashlib.sha256).digest())}"


def test_session_that_is_not_the_tokens_subjects_is_refused(rig: Rig) -> None:
    """Minting needs the session's human; a forged claim pairing mallory with alice's session gets nothing."""
    signer = rig.issuer.keys[-1].private
    tok = _sign(rig.claims(sub="mallory"), signer, "ES256")
    _assert_refused(_post(rig.urls["server-a"], tok), "server-a", "invalid_token")
    tok = _sign(rig.claims(azp="other-agent"), signer, "ES256")
    _assert_refused(_post(rig.urls["server-a"], tok), "server-a", "invalid_token")
    # A team the session does not have (team-scoped grants would match it): refused, not added.
    tok = _sign(rig.claims(team_id="platform-admins"), signer, "ES256")
    _assert_refused(_post(rig.urls["server-a"], tok), "server-a", "invalid_token")


def _wait_refused(url: str, token: str, deadline: float) -> tuple[float, httpx2.Response]:
    t0 = time.monotonic()
    while True:
        r = _post(url, token)
        if r.status_code == 401 or time.monotonic() - t0 > deadline:
            return time.monotonic() - t0, r
        time.sleep(0.02)


def test_revoking_the_session_denies_within_two_seconds(rig: Rig) -> None:
    tok = rig.token("server-b")
    url = rig.urls["server-b"]
    assert _post(url, tok).status_code == 200  # verified and cached
    original = rig.policy("server-b")
    try:
        revoked = dataclasses.replace(
            original, sessions=tuple(dataclasses.replace(s, revoked=True) for s in original.sessions)
        )
        rig.set_policy("server-b", revoked)
        took, resp = _wait_refused(url, tok, 5.0)
        _assert_refused(resp, "server-b", "session_revoked")
        assert took < 2.0, took
        # The user gone: their sessions drop out of the policy (what disabling a user does) -> refused too.
        rig.set_policy("server-b", dataclasses.replace(original, sessions=()))
        time.sleep(0.6)
        _assert_refused(_post(url, tok), "server-b", "session_not_found")
    finally:
        rig.set_policy("server-b", original)
    deadline = time.monotonic() + 5
    while _post(url, tok).status_code != 200:
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_key_rotation_unknown_kid_refetches_bounded(rig: Rig) -> None:
    """A new signing key is picked up on its first use; a flood of unknown kids does not flood the API."""
    url = rig.urls["server-a"]
    old = rig.issuer
    new_key = load_key("k2", generate_pem())
    rotated = AgentTokenIssuer(old.issuer, (*old.keys, new_key), ttl=600)
    rig.jwks.issuer = rotated
    try:
        time.sleep(5.2)  # past the refetch interval since this gateway's last fetch
        tok = rotated.mint(human="alice", agent=AGENT, team="", session="sess-alice-a", session_namespace=NS,
                           server=f"{NS}/server-a", audience=RESOURCE["server-a"])[0]  # fmt: skip
        assert _post(url, tok).status_code == 200
        before = rig.jwks.hits
        for i in range(30):
            bogus = _sign(rig.claims(), new_key.private, "ES256", kid=f"made-up-{i}")
            assert _post(url, bogus).status_code == 401
        assert rig.jwks.hits - before <= 1, rig.jwks.hits - before
    finally:
        rig.jwks.issuer = old


def test_protected_resource_metadata_names_each_servers_own_url(rig: Rig) -> None:
    for server, url in rig.urls.items():
        base = url.removesuffix("/mcp")
        # Forwarded headers and another served name (a loopback alias) never change the resource...
        for host in ({}, {"Host": "localhost", "X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https"}):
            meta = httpx2.get(f"{base}/.well-known/oauth-protected-resource/mcp", headers=host, timeout=10)
            assert meta.status_code == 200, meta.text
            assert meta.json()["resource"] == RESOURCE[server]
        # ...and a foreign Host is refused before any metadata is built (sidecar/origin.py).
        meta = httpx2.get(f"{base}/.well-known/oauth-protected-resource/mcp", headers={"Host": "evil.example"},
                          timeout=10)  # fmt: skip
        assert meta.status_code == 403


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_official_mcp_client_with_a_platform_token(rig: Rig, mode: str) -> None:
    headers = {"Authorization": f"Bearer {rig.token()}"}
    async with mcp_client(rig.urls["server-a"], headers, mode=mode) as client:
        result = await client.call_tool("read_document", {"title": "welcome"})
        assert not result.is_error
        assert "Welcome to the workspace" in result.content[0].text
        names = {t.name for t in (await client.list_tools()).tools}
        assert "read_document" in names and "delete_document" not in names
    # The same client with server-b's token is turned away by server-a.
    with pytest.raises(Exception) as info:
        async with mcp_client(rig.urls["server-a"], {"Authorization": f"Bearer {rig.token('server-b')}"},
                              mode=mode) as client:
            await client.call_tool("read_document", {"title": "welcome"})
    assert "invalid_token" in repr(info.value) and "Audience" in repr(info.value), repr(info.value)


def test_misconfigured_or_unreachable_issuer_fails_closed(rig: Rig) -> None:
    """No issuer configured, or the JWKS unreachable: 503 with a reason, never a pass."""
    from sidecar.settings import SettingsError, SidecarSettings

    with pytest.raises(SettingsError, match="PLATFORM_TOKEN_ISSUER"):
        SidecarSettings.from_env({"PLATFORM_JWKS_URL": "http://127.0.0.1:1/jwks"})
    with pytest.raises(SettingsError, match="PLATFORM_TOKEN_ISSUER"):
        SidecarSettings.from_env({"PLATFORM_TOKEN_ISSUER": "not a url"})
    extra = Ports.free()
    base = {"LISTEN_HOST": "127.0.0.1", "UPSTREAM_URL": f"http://127.0.0.1:{rig.ports.sample_mcp}",
            "POLICY_FILE": str(rig.policy_files["server-a"])}
    cases = [
        ({}, "platform_config_missing"),
        ({"PLATFORM_TOKEN_ISSUER": rig.issuer.issuer, "PLATFORM_JWKS_URL": f"http://127.0.0.1:{extra.api}/jwks"},
         "platform_jwks_unavailable"),
    ]  # fmt: skip
    for i, (env, reason) in enumerate(cases):
        port = extra.sidecar_a if i == 0 else extra.sidecar_b
        sc = SidecarProcess({**base, **env, "PORT": str(port),
                             "METRICS_PORT": str(extra.sidecar_a_metrics if i == 0 else extra.sidecar_b_metrics)},
                            rig.tmp / f"misconfigured-{i}.log")  # fmt: skip
        try:
            resp = _post(f"http://127.0.0.1:{port}/mcp", rig.token())
            assert resp.status_code == 503, resp.text
            assert resp.json()["error"]["data"]["reason"] == reason
        finally:
            sc.stop()
