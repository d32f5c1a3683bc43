"""The local front door, run as the real process the `front_door` part defines."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from localstack.config import REPO_ROOT, Ports, StackConfig
from localstack.front_door.proxy import UNKNOWN_SERVER, route
from localstack.front_door.routes_file import RouteFileError, parse_routes, write_routes
from localstack.front_door.settings import FrontDoorSettings, SettingsError, parse_servers
from localstack.parts import front_door
from localstack.supervisor import Supervisor
from tests.helpers.upstreams import serve_upstreams


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[StackConfig, object]]:
    cfg = StackConfig(data_dir=tmp_path_factory.mktemp("fd"), ports=Ports.free())
    # server-b deliberately has no listener: its route must fail cleanly with 502.
    upstreams = {"ui": cfg.ports.ui, "ingest": cfg.ports.ingest, "server-a": cfg.ports.sidecar_a}
    with serve_upstreams(upstreams) as release, Supervisor(cfg) as sup:
        sup.start_all(front_door.components(cfg))
        yield cfg, release


def _get(cfg: StackConfig, path: str, **kw: object) -> httpx.Response:
    return httpx.request(str(kw.pop("method", "GET")), cfg.url("front_door", path), timeout=10, **kw)  # type: ignore[arg-type]


def test_root_and_api_go_to_ui_unchanged(stack: tuple[StackConfig, object]) -> None:
    cfg, _ = stack
    root = _get(cfg, "/").json()
    assert (root["upstream"], root["path"]) == ("ui", "/")
    api = _get(cfg, "/api/events?limit=5&decision=deny", headers={"x-api-key": "k"}).json()
    assert (api["upstream"], api["path"], api["query"]) == ("ui", "/api/events", "limit=5&decision=deny")
    assert api["headers"]["x-api-key"] == "k"
    assert api["headers"]["X-Forwarded-Host"] == f"127.0.0.1:{cfg.ports.front_door}"


def test_ingest_prefix_is_stripped_and_body_streams_through(stack: tuple[StackConfig, object]) -> None:
    cfg, _ = stack
    body = json.dumps({"source": "s", "event_type": "t", "payload": {"x": "y" * 3_000_000}}).encode()
    got = _get(cfg, "/ingest/events", method="POST", content=body, headers={"content-type": "application/json"}).json()
    assert (got["upstream"], got["method"], got["path"]) == ("ingest", "POST", "/events")
    assert got["body_len"] == len(body)
    assert got["body_head"] == body[:64].decode()


def test_server_mcp_goes_to_its_sidecar(stack: tuple[StackConfig, object]) -> None:
    cfg, _ = stack
    got = _get(cfg, "/server-a/mcp", method="POST", content=b'{"jsonrpc":"2.0","id":1,"method":"ping"}').json()
    assert (got["upstream"], got["path"]) == ("server-a", "/mcp")
    assert got["headers"]["X-Forwarded-Prefix"] == "/server-a"
    # `/<name>/mcp` belongs to MCP servers: a name without a route is a 404 here, not the UI's business.
    other = _get(cfg, "/unknown-server/mcp")
    assert other.status_code == 404 and other.json() == {"error": "unknown_server", "path": "/unknown-server/mcp"}
    assert _get(cfg, "/unknown-server/other").json()["upstream"] == "ui"


def test_sse_events_are_not_buffered(stack: tuple[StackConfig, object]) -> None:
    cfg, release = stack
    with httpx.stream("GET", cfg.url("front_door", "/server-a/mcp/sse"), timeout=15) as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        lines = resp.iter_lines()
        seen = []
        for line in lines:
            if line.startswith("data:"):
                seen.append(line)
                if line == "data: first":
                    release.set()  # type: ignore[attr-defined]
                if line == "data: second":
                    break
    assert seen == ["data: first", "data: second"]


def test_unreachable_upstream_is_a_clear_502(stack: tuple[StackConfig, object]) -> None:
    cfg, _ = stack
    resp = _get(cfg, "/server-b/mcp", method="POST", content=b"{}")
    assert resp.status_code == 502
    assert resp.json() == {"error": "upstream_unavailable", "upstream": "server-b"}


def test_route_table() -> None:
    s = FrontDoorSettings(servers={"server-a": "http://h:1"})
    assert route(s, "/ingest/events") == ("ingest", s.ingest_url, "/events")
    assert route(s, "/server-a/mcp") == ("server-a", "http://h:1", "/mcp")
    assert route(s, "/server-a/mcp/x") == ("server-a", "http://h:1", "/mcp/x")
    assert route(s, "/server-a/other") == ("ui", s.ui_url, "/server-a/other")
    assert route(s, "/ingestion") == ("ui", s.ui_url, "/ingestion")
    dynamic = {"dyn": "http://127.0.0.1:2", "server-a": "http://127.0.0.1:3"}
    assert route(s, "/dyn/mcp/x", dynamic) == ("dyn", "http://127.0.0.1:2", "/mcp/x")
    assert route(s, "/server-a/mcp", dynamic) == ("server-a", "http://h:1", "/mcp")  # static wins
    assert route(s, "/gone/mcp", dynamic) == (UNKNOWN_SERVER, "", "/gone/mcp")
    assert route(s, "/api/mcp", dynamic) == ("ui", s.ui_url, "/api/mcp")  # reserved: the UI's API
    assert route(s, "/Bad_Name/mcp", dynamic) == ("ui", s.ui_url, "/Bad_Name/mcp")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PORT": "eighty"}, "PORT must be an integer"),
        ({"MCP_SERVERS": "server-a"}, "name=http://host:port"),
        ({"MCP_SERVERS": "Bad_Name=http://h:1"}, "name=http://host:port"),
        ({"MCP_SERVERS": "a=ftp://h"}, "absolute http(s) URL"),
        ({"UI_UPSTREAM": "localhost:8082"}, "UI_UPSTREAM must be an absolute"),
    ],
)
def test_bad_settings_are_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=re.escape(message)):
        FrontDoorSettings.from_env(env)


def test_bad_settings_stop_the_process_with_exit_2() -> None:
    env = {**os.environ, "MCP_SERVERS": "nonsense", "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "localstack.front_door"], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2
    assert "MCP_SERVERS entries must look like" in proc.stderr


def test_parse_servers_keeps_order_and_trims() -> None:
    assert parse_servers(" a=http://h:1/ , b=http://h:2") == {"a": "http://h:1", "b": "http://h:2"}


def test_health_endpoint_is_the_front_doors_own(stack: tuple[StackConfig, object]) -> None:
    cfg, _ = stack
    with urllib.request.urlopen(cfg.url("front_door", "/__front_door/health"), timeout=5) as resp:
        assert json.loads(resp.read()) == {"ok": True}
    assert Path(cfg.data_dir, "logs", "front_door.log").exists()




def _until(cfg: StackConfig, path: str, want: int, seconds: float = 10.0) -> httpx.Response:
    deadline = time.monotonic() + seconds
    while True:
        resp = _get(cfg, path, method="POST", content=b"{}")
        if resp.status_code == want or time.monotonic() > deadline:
            return resp
        time.sleep(0.05)


def test_dynamic_routes_come_and_go_with_the_routes_file(stack: tuple[StackConfig, object]) -> None:
    cfg, _ = stack
    table = front_door.routes_file(cfg)
    sidecar = cfg.url("sidecar_a")
    try:
        write_routes(table, {"dyn": sidecar})
        got = _until(cfg, "/dyn/mcp", 200)
        assert got.status_code == 200 and got.json()["path"] == "/mcp", got.text
        assert got.json()["headers"]["X-Forwarded-Prefix"] == "/dyn"
        # A dynamic entry never overrides a static server.
        write_routes(table, {"dyn": sidecar, "server-b": sidecar})
        _until(cfg, "/dyn/mcp", 200)
        assert _get(cfg, "/server-b/mcp", method="POST", content=b"{}").status_code == 502
        write_routes(table, {})
        assert _until(cfg, "/dyn/mcp", 404).status_code == 404
    finally:
        table.unlink(missing_ok=True)


@pytest.mark.parametrize(
    "text",
    [
        '{"routes": {"dyn": "http://10.0.0.1:80"}}',  # not loopback: could forward anywhere
        '{"routes": {"dyn": "http://localhost:80"}}',  # a name, resolved later: not a loopback literal
        '{"routes": {"dyn": "https://127.0.0.1:80"}}',
        '{"routes": {"dyn": "http://127.0.0.1"}}',  # no port
        '{"routes": {"dyn": "http://u:p@127.0.0.1:80"}}',
        '{"routes": {"dyn": "http://127.0.0.1:80/elsewhere"}}',
        '{"routes": {"api": "http://127.0.0.1:80"}}',
        '{"routes": {"Dyn": "http://127.0.0.1:80"}}',
        '{"routes": {"dyn": 80}}',
        '{"routes": ["dyn"]}',
        "not json",
    ],
)
def test_invalid_route_tables_are_refused(text: str) -> None:
    with pytest.raises(RouteFileError):
        parse_routes(text)


def test_an_invalid_routes_file_drops_every_dynamic_route(stack: tuple[StackConfig, object]) -> None:
    """Fail closed: one bad entry means no dynamic routes at all, and static routes keep working."""
    cfg, _ = stack
    table = front_door.routes_file(cfg)
    try:
        write_routes(table, {"dyn": cfg.url("sidecar_a")})
        assert _until(cfg, "/dyn/mcp", 200).status_code == 200
        table.write_text(json.dumps({"routes": {"dyn": cfg.url("sidecar_a"), "evil": "http://192.0.2.1:80"}}))
        assert _until(cfg, "/dyn/mcp", 404).status_code == 404
        assert _get(cfg, "/server-a/mcp", method="POST", content=b"{}").status_code == 200
        assert "rejected" in Path(cfg.data_dir, "logs", "front_door.log").read_text()
    finally:
        table.unlink(missing_ok=True)


def test_write_routes_refuses_what_the_front_door_would_reject(tmp_path: Path) -> None:
    with pytest.raises(RouteFileError):
        write_routes(tmp_path / "routes.json", {"dyn": "http://203.0.113.5:80"})
    assert not (tmp_path / "routes.json").exists()
