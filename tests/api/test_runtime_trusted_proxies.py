"""`TRUSTED_PROXIES`: whose X-Forwarded-For the API believes for the login lockout and the audit log."""

from __future__ import annotations

import pytest

from functions.api.settings import ApiSettings
from mcp_sentinel.client_address import client_address, parse_networks
from tests.helpers.api import AppFactory

UI = "10.20.0.5"  # the UI replica's address
PROXIES = parse_networks("TRUSTED_PROXIES", "10.20.0.0/16")


async def _fail(api, email: str, xff: str | None = None) -> int:  # type: ignore[no-untyped-def]
    headers = {"x-forwarded-for": xff} if xff else {}
    r = await api.client.post("/api/auth/login", json={"email": email, "password": "wrong-pass"}, headers=headers)
    return int(r.status_code)


async def _login(api, email: str, xff: str | None = None) -> int:  # type: ignore[no-untyped-def]
    headers = {"x-forwarded-for": xff} if xff else {}
    r = await api.client.post("/api/auth/login", json={"email": email, "password": "password123"}, headers=headers)
    return int(r.status_code)


async def test_spoofed_forwarded_for_from_an_untrusted_peer_is_ignored(make_api: AppFactory) -> None:
    api = await make_api(peer="198.51.100.9", trusted_proxies=PROXIES)
    await api.signup("eve-target@example.org")
    # A fresh forged address per attempt does not dodge the lock: the key is the real peer.
    codes = [await _fail(api, "eve-target@example.org", f"203.0.113.{i}") for i in range(3)]
    assert codes == [401, 401, 401]
    assert await _login(api, "eve-target@example.org", "203.0.113.200") == 429
    rows = await api.store.list_audit(limit=10)
    assert {r["actor_ip"] for r in rows if r["action"] == "login"} == {"198.51.100.9"}


async def test_forwarded_for_from_a_trusted_proxy_names_the_client(make_api: AppFactory) -> None:
    api = await make_api(peer=UI, trusted_proxies=PROXIES)
    await api.signup("shared@example.org")
    for _ in range(3):  # the attacker's browser, as the UI forwards it
        assert await _fail(api, "shared@example.org", "203.0.113.66") == 401
    assert await _login(api, "shared@example.org", "203.0.113.66") == 429
    # Another browser behind the same UI still signs in; the lock is the attacker's alone.
    assert await _login(api, "shared@example.org", "198.51.100.7") == 200
    # A client-written left part of the header is not the key: the right-most untrusted hop is.
    assert await _login(api, "shared@example.org", "198.51.100.7, 203.0.113.66") == 429
    rows = await api.store.list_audit(limit=20)
    assert "203.0.113.66" in {r["actor_ip"] for r in rows if r["action"] == "login"}


async def test_without_trusted_proxies_the_peer_is_the_key(make_api: AppFactory) -> None:
    """The control: with no TRUSTED_PROXIES every browser behind the UI shares the UI's lock."""
    api = await make_api(peer=UI)
    await api.signup("control@example.org")
    for _ in range(3):
        await _fail(api, "control@example.org", "203.0.113.66")
    assert await _login(api, "control@example.org", "198.51.100.7") == 429


def test_client_address_walks_right_to_left() -> None:
    assert client_address("198.51.100.9", "203.0.113.1", PROXIES) == "198.51.100.9"
    assert client_address(UI, "1.2.3.4, 203.0.113.1", PROXIES) == "203.0.113.1"
    assert client_address(UI, "1.2.3.4, 10.20.9.9", PROXIES) == "1.2.3.4"  # a second trusted hop is skipped
    assert client_address(UI, "10.20.9.9", PROXIES) == "10.20.9.9"  # only trusted hops: the nearest one
    assert client_address(UI, "not-an-ip", PROXIES) == UI  # garbage cannot come from a trusted hop
    assert client_address(UI, "", PROXIES) == UI
    assert client_address(None, "1.2.3.4", PROXIES) == "unknown"


def test_trusted_proxies_setting() -> None:
    s = ApiSettings.from_env({"TRUSTED_PROXIES": "127.0.0.1/32, ::1/128,10.0.0.0/8"})
    assert [str(n) for n in s.trusted_proxies] == ["127.0.0.1/32", "::1/128", "10.0.0.0/8"]
    assert ApiSettings.from_env({}).trusted_proxies == ()
    with pytest.raises(ValueError, match="TRUSTED_PROXIES: 'ten.0.0.0' is not an IP"):
        ApiSettings.from_env({"TRUSTED_PROXIES": "ten.0.0.0"})
    with pytest.raises(ValueError, match="COMPONENTS_BACKEND must be kubernetes or local"):
        ApiSettings.from_env({"COMPONENTS_BACKEND": "docker"})
    with pytest.raises(ValueError, match="needs SENTINEL_RUN_DIR"):
        ApiSettings.from_env({"COMPONENTS_BACKEND": "local"})
