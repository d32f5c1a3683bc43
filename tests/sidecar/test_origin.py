"""Origin/Host rules (sidecar/origin.py) and their settings; the wire behaviour is in
tests/hostile/test_gateway_coverage.py."""

from __future__ import annotations

import pytest

from sidecar.origin import OriginGuard
from sidecar.settings import SettingsError, SidecarSettings


@pytest.mark.parametrize(
    ("host", "ok"),
    [
        ("127.0.0.1:8091", True), ("localhost", True), ("[::1]:1", True), ("LOCALHOST:9", True),
        ("mcp.example.com", True), ("mcp.example.com:443", True), ("mcp.example.com:80", False),
        ("svc.ns:8091", True), ("svc.ns", False), ("svc.ns:8092", False),
        ("evil.example.com", False), ("localhost.evil.example.com", False), ("127.0.0.1@evil", False),
        ("", False), ("localhost:", False), ("localhost:abc", False), ("[::1", False), ("a:b:c", False),
    ],
)
def test_host_rules(host: str, ok: bool) -> None:
    guard = OriginGuard(["svc.ns:8091"], [], "https://mcp.example.com/server-a")
    assert guard.host_allowed([host]) is ok
    assert guard.host_allowed([host]) is ok  # the cached verdict is the same
    assert guard.host_allowed([host, host]) is False  # exactly one Host


@pytest.mark.parametrize(
    ("origin", "ok"),
    [
        ("https://mcp.example.com", True), ("https://mcp.example.com:443", True), ("http://mcp.example.com", False),
        ("http://localhost:3000", True), ("https://127.0.0.1", True), ("https://app.example.org:8443", True),
        ("https://app.example.org", False), ("null", False), ("file://", False), ("http://evil.example", False),
        ("https://mcp.example.com/path", False),
    ],
)
def test_origin_rules(origin: str, ok: bool) -> None:
    guard = OriginGuard([], ["https://app.example.org:8443"], "https://mcp.example.com")
    assert guard.origin_allowed([origin]) is ok
    assert guard.origin_allowed([]) is True  # non-browser clients send none


def test_star_opts_out_but_malformed_values_still_fail() -> None:
    guard = OriginGuard(["*"], ["*"])
    assert guard.host_allowed(["anything.example:1"]) and guard.origin_allowed(["https://x.example"])
    assert not guard.host_allowed(["bad host"]) and not guard.origin_allowed(["null"])


@pytest.mark.parametrize(
    "env",
    [{"ALLOWED_HOSTS": "http://x"}, {"ALLOWED_HOSTS": "x:port"}, {"ALLOWED_ORIGINS": "x.example"},
     {"ALLOWED_ORIGINS": "ftp://x.example"}, {"ALLOWED_ORIGINS": "https://x.example/path"}],
)
def test_bad_entries_refuse_to_start(env: dict[str, str]) -> None:
    with pytest.raises(SettingsError):
        SidecarSettings.from_env(env)


def test_settings_parse_lists() -> None:
    s = SidecarSettings.from_env({"ALLOWED_HOSTS": " a.example , b.example:* ,", "ALLOWED_ORIGINS": "https://a.example"})
    assert s.allowed_hosts == ("a.example", "b.example:*") and s.allowed_origins == ("https://a.example",)
