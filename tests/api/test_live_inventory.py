"""Live inventory in `GET /api/runtime/servers`: real MCP servers probed over HTTP with the official client.

Real processes: the sample "workspace assistant" (the `sample_mcp` stack part, on the port the demo
seed of the local Kubernetes API names), and the SDK servers of `tests/helpers/inventory_servers.py`
(paginated tools with prompts and resources; a server whose `tools/list` fails). In-process TCP
endpoints stand in for what cannot be a process worth starting: a plain web page (not MCP) and a
peer that accepts connections and never answers (a hung server).
"""

from __future__ import annotations

import asyncio
import re
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest

from functions.api.inventory import DEFAULT_URL_TEMPLATE, DISABLED, NOT_MCP, PENDING, UNREACHABLE, server_path
from functions.api.settings import ApiSettings
from localstack.config import Ports, StackConfig, free_port
from localstack.kube_seed import TOOLS as SEED_TOOLS
from localstack.parts import api as api_part
from localstack.parts import sample_mcp
from localstack.parts import sidecars as sidecars_part
from localstack.supervisor import PYTHON, Component, Supervisor
from tests.fixtures.kube import LocalKube
from tests.fixtures.pki import Pki
from tests.fixtures.sidecar import SidecarProcess
from tests.helpers.api import ADMIN_KEY, Api, AppFactory
from tests.helpers.inventory_servers import LOCAL, put_server

ADMIN = {"x-api-key": ADMIN_KEY}
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
SAMPLE_TOOLS = sorted(t["name"] for t in SEED_TOOLS)



@dataclass
class Servers:
    """Running MCP servers: the sample (on the demo seed's port), a rich one and a broken one."""

    sup: Supervisor
    sample: int
    rich: int
    broken: int


def _sdk_server(mode: str, port: int) -> Component:
    argv = [PYTHON, "-m", "tests.helpers.inventory_servers", "--mode", mode, "--port", str(port)]
    return Component(name=f"inventory-{mode}", argv=argv, health_port=port, startup_timeout=60.0)


@pytest.fixture(scope="module")
def servers(kube_cluster: LocalKube) -> Iterator[Servers]:
    # Same ports as the local Kubernetes API's config, so the seeded demo servers point at this sample.
    cfg = StackConfig(data_dir=Path(tempfile.mkdtemp(prefix="inventory-")), ports=kube_cluster.cfg.ports)
    rich, broken = free_port(), free_port()
    with Supervisor(cfg) as sup:
        sup.start_all([*sample_mcp.components(cfg), _sdk_server("rich", rich), _sdk_server("broken-tools", broken)])
        yield Servers(sup, cfg.ports.sample_mcp, rich, broken)


@pytest.fixture
async def silent_port() -> AsyncIterator[int]:
    """A TCP peer that accepts connections and never answers (a hung MCP server)."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    for w in held:
        w.close()
    server.close()


@pytest.fixture
async def http_endpoint() -> AsyncIterator[Callable[[bytes, bytes], Awaitable[int]]]:
    """Start HTTP servers answering every request with one status line and body (not MCP); their ports."""
    started: list[asyncio.Server] = []

    async def start(status: bytes, body: bytes) -> int:
        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            head = await reader.readuntil(b"\r\n\r\n")
            length = re.search(rb"(?i)content-length:\s*(\d+)", head)
            if length:
                await reader.readexactly(int(length.group(1)))
            writer.write(b"HTTP/1.1 %s\r\nContent-Type: text/html\r\nConnection: close\r\n"
                         b"Content-Length: %d\r\n\r\n%s" % (status, len(body), body))
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(answer, "127.0.0.1", 0)
        started.append(server)
        port: int = server.sockets[0].getsockname()[1]
        return port

    yield start
    for server in started:
        server.close()



async def listing(api: Api, ns: str, **params: Any) -> tuple[dict[str, dict[str, Any]], float]:
    """The servers of `ns` by name, and how long the request took."""
    t0 = time.monotonic()
    r = await api.client.get("/api/runtime/servers", params={"namespace": ns, **params}, headers=ADMIN)
    elapsed = time.monotonic() - t0
    assert r.status_code == 200, r.text
    return {s["name"]: s for s in r.json()["servers"]}, elapsed


async def local_api(make_api: AppFactory, kube: LocalKube, **settings: Any) -> Api:
    return await make_api(inventory_url_template=LOCAL, _backends={"kube": kube.api}, **settings)


async def test_live_inventory_of_real_servers_and_drift_both_ways(
    make_api: AppFactory, kube_cluster: LocalKube, kube_namespace: str, servers: Servers
) -> None:
    ns = kube_namespace
    put_server(kube_cluster, ns, "assistant", servers.sample, SAMPLE_TOOLS)  # declares exactly what it serves
    put_server(kube_cluster, ns, "rich", servers.rich, ["alpha", "delta"])  # serves beta/gamma too; no delta
    api = await local_api(make_api, kube_cluster)
    got, _ = await listing(api, ns)

    assistant = got["assistant"]
    live = assistant["liveInventory"]
    assert live is not None, assistant.get("liveInventoryError")
    assert sorted(t["name"] for t in live["tools"]) == SAMPLE_TOOLS
    assert next(t for t in live["tools"] if t["name"] == "search")["description"].startswith("Titles of documents")
    assert live["prompts"] == [] and live["resources"] == [] and RFC3339.match(live["probedAt"])
    assert "liveInventoryError" not in assistant and "truncated" not in live
    assert assistant["inventoryDrift"] == {"undeclared": [], "missing": []}
    assert [t["name"] for t in assistant["tools"]] == SAMPLE_TOOLS  # the CRD inventory is still there

    rich = got["rich"]
    live = rich["liveInventory"]
    assert [t["name"] for t in live["tools"]] == ["alpha", "beta", "gamma"]  # the second page was followed
    assert live["prompts"] == [{"name": "greet", "description": "Say hello."}]
    assert live["resources"] == [{"name": "readme", "uri": "doc://readme", "description": "The readme."}]
    assert rich["inventoryDrift"] == {"undeclared": ["beta", "gamma"], "missing": ["delta"]}

    # One server: the same live inventory; live=false leaves the declared inventory only.
    r = await api.client.get(f"/api/runtime/servers/{ns}/rich", headers=ADMIN)
    assert r.status_code == 200 and r.json()["server"]["inventoryDrift"]["missing"] == ["delta"]
    r = await api.client.get(f"/api/runtime/servers/{ns}/rich", params={"live": "false"}, headers=ADMIN)
    assert r.status_code == 200 and "liveInventory" not in r.json()["server"]


async def test_the_local_stack_template_reaches_the_demo_servers(
    make_api: AppFactory, kube_cluster: LocalKube, servers: Servers
) -> None:
    template = api_part.api_env(kube_cluster.cfg)["MCP_INVENTORY_URL_TEMPLATE"]
    assert template == api_part.inventory_url_template(kube_cluster.cfg) == "http://127.0.0.1:{port}{path}"
    api = await make_api(inventory_url_template=template, _backends={"kube": kube_cluster.api})
    got, _ = await listing(api, "mcp-servers")
    for name in ("server-a", "server-b"):
        assert sorted(t["name"] for t in got[name]["liveInventory"]["tools"]) == SAMPLE_TOOLS, got[name]
        assert got[name]["inventoryDrift"] == {"undeclared": [], "missing": []}


async def test_unreachable_server_answers_quickly_with_a_reason(
    make_api: AppFactory, kube_cluster: LocalKube, kube_namespace: str
) -> None:
    put_server(kube_cluster, kube_namespace, "gone", free_port(), ["search"])  # nothing listens there
    api = await local_api(make_api, kube_cluster)
    got, elapsed = await listing(api, kube_namespace)
    assert got["gone"]["liveInventory"] is None and got["gone"]["liveInventoryError"] == UNREACHABLE
    assert "inventoryDrift" not in got["gone"] and elapsed < 2.0


async def test_default_template_targets_the_service_dns_name(
    make_api: AppFactory, kube_cluster: LocalKube, kube_namespace: str
) -> None:
    # Outside a cluster the Service name does not resolve: unreachable, at once.
    assert ApiSettings().inventory_url_template == DEFAULT_URL_TEMPLATE
    put_server(kube_cluster, kube_namespace, "incluster", 8088, ["search"])
    api = await make_api(_backends={"kube": kube_cluster.api})
    got, elapsed = await listing(api, kube_namespace)
    assert got["incluster"]["liveInventoryError"] == UNREACHABLE and elapsed < 3.0


async def test_a_hung_server_times_out_and_probes_run_in_parallel(
    make_api: AppFactory, kube_cluster: LocalKube, kube_namespace: str, silent_port: int
) -> None:
    for i in range(3):
        put_server(kube_cluster, kube_namespace, f"hung{i}", silent_port, ["search"])
    api = await local_api(make_api, kube_cluster, inventory_timeout_seconds=0.5)
    got, elapsed = await listing(api, kube_namespace)
    for i in range(3):
        assert got[f"hung{i}"]["liveInventory"] is None
        assert got[f"hung{i}"]["liveInventoryError"] == "timeout: no answer within 0.5s"
    assert 0.5 <= elapsed < 1.4, elapsed  # three probes at once, not one after another


async def test_the_concurrency_limit_queues_probes_and_the_listing_does_not_wait_for_the_queue(
    make_api: AppFactory, kube_cluster: LocalKube, kube_namespace: str, silent_port: int
) -> None:
    for name in ("hung-a", "hung-b"):
        put_server(kube_cluster, kube_namespace, name, silent_port, ["search"])
    api = await local_api(make_api, kube_cluster, inventory_timeout_seconds=0.5, inventory_concurrency=1)
    got, elapsed = await listing(api, kube_namespace)
    reasons = sorted(s["liveInventoryError"] for s in got.values())
    assert reasons == [PENDING, "timeout: no answer within 0.5s"] and elapsed < 1.0, (reasons, elapsed)
    await asyncio.sleep(0.6)  # the queued probe ran meanwhile; its result is in the cache
    got, elapsed = await listing(api, kube_namespace)
    assert [s["liveInventoryError"] for s in got.values()] == ["timeout: no answer within 0.5s"] * 2
    assert elapsed < 0.3


async def test_non_mcp_http_endpoints_are_named_as_such(
    make_api: AppFactory, kube_cluster: LocalKube, kube_namespace: str, servers: Servers,
    http_endpoint: Callable[[bytes, bytes], Awaitable[int]],
) -> None:
    ns = kube_namespace
    put_server(kube_cluster, ns, "webapp", await http_endpoint(b"200 OK", b"<html>Intranet</html>"), ["search"])
    put_server(kube_cluster, ns, "locked", await http_endpoint(b"401 Unauthorized", b"sign in"), ["search"])
    # A real MCP server asked at a path it does not serve: ingressPath /wrong/nope -> /nope.
    put_server(kube_cluster, ns, "wrong", servers.sample, ["search"], ingressPath="/wrong/nope")
    api = await local_api(make_api, kube_cluster)
    got, _ = await listing(api, ns)
    assert {n: (s["liveInventory"], s["liveInventoryError"]) for n, s in got.items()} == {
        "webapp": (None, NOT_MCP),
        "locked": (None, "refused: the server requires credentials the probe does not have (HTTP 401)"),
        "wrong": (None, f"{NOT_MCP} (HTTP 404)"),
    }


async def test_a_failing_list_reports_the_method_and_code_but_not_the_servers_message(
    make_api: AppFactory, kube_cluster: LocalKube, kube_namespace: str, servers: Servers
) -> None:
    put_server(kube_cluster, kube_namespace, "broken", servers.broken, ["search"])
    api = await local_api(make_api, kube_cluster)
    r = await api.client.get("/api/runtime/servers", params={"namespace": kube_namespace}, headers=ADMIN)
    broken = r.json()["servers"][0]
    assert broken["liveInventory"] is None and broken["liveInventoryError"] == "tools/list failed: MCP error -32603"
    assert "hunter2" not in r.text


async def test_cache_serves_a_recent_probe_and_reprobes_a_changed_or_expired_server(
    make_api: AppFactory, kube_cluster: LocalKube, kube_namespace: str, tmp_path: Path
) -> None:
    ns = kube_namespace
    port = free_port()
    cfg = StackConfig(data_dir=tmp_path, ports=Ports(sample_mcp=port))
    with Supervisor(cfg) as sup:
        sup.start_all(sample_mcp.components(cfg))
        put_server(kube_cluster, ns, "cached", port, SAMPLE_TOOLS)
        long = await local_api(make_api, kube_cluster)  # 30 s by default
        short = await local_api(make_api, kube_cluster, inventory_cache_seconds=0.5)
        first = (await listing(long, ns))[0]["cached"]["liveInventory"]
        assert (await listing(short, ns))[0]["cached"]["liveInventory"] is not None
        sup.stop("sample_mcp")  # from now on a probe can only fail

    again = (await listing(long, ns))[0]["cached"]
    assert again["liveInventory"] == first and again["inventoryDrift"] == {"undeclared": [], "missing": []}
    assert (await listing(short, ns))[0]["cached"]["liveInventory"] is not None  # still within 0.5 s
    await asyncio.sleep(0.6)
    assert (await listing(short, ns))[0]["cached"]["liveInventoryError"] == UNREACHABLE  # expired: probed again

    obj = kube_cluster.kube.servers.get(ns, "cached")
    obj["spec"]["description"] = "changed"
    kube_cluster.kube.servers.replace(ns, "cached", obj)  # a new generation is a new cache key
    assert (await listing(long, ns))[0]["cached"]["liveInventoryError"] == UNREACHABLE


async def test_live_false_skips_probing(
    make_api: AppFactory, kube_cluster: LocalKube, kube_namespace: str, silent_port: int
) -> None:
    put_server(kube_cluster, kube_namespace, "hung", silent_port, ["search"])
    api = await local_api(make_api, kube_cluster, inventory_timeout_seconds=2.0)
    got, elapsed = await listing(api, kube_namespace, live="false")
    assert elapsed < 1.0 and [t["name"] for t in got["hung"]["tools"]] == ["search"]
    assert not {"liveInventory", "liveInventoryError", "inventoryDrift"} & set(got["hung"])
    r = await api.client.get("/api/runtime/servers", params={"namespace": kube_namespace, "live": "maybe"},
                             headers=ADMIN)
    assert r.status_code == 400


async def test_disabled_template_and_invalid_targets_are_reported_without_probing(
    make_api: AppFactory, kube_cluster: LocalKube, kube_namespace: str
) -> None:
    put_server(kube_cluster, kube_namespace, "sneaky", 8088, ["search"], ingressPath="/sneaky/../admin")
    api = await local_api(make_api, kube_cluster)
    got, _ = await listing(api, kube_namespace)
    assert got["sneaky"]["liveInventory"] is None
    assert got["sneaky"]["liveInventoryError"] == "invalid target: spec.ingressPath is not a plain URL path"
    off = await make_api(inventory_url_template="", _backends={"kube": kube_cluster.api})
    got, _ = await listing(off, kube_namespace)
    assert got["sneaky"] == {**got["sneaky"], "liveInventory": None, "liveInventoryError": DISABLED}


def test_server_path_follows_the_public_route() -> None:
    assert server_path("s", {}) == "/mcp"
    assert server_path("s", {"ingressPath": "/s/mcp"}) == "/mcp"  # the ingress rewrites /s away
    assert server_path("s", {"ingressPath": "/pub/v2/mcp", "publicPathPrefix": "pub"}) == "/v2/mcp"
    assert server_path("s", {"ingressPath": "/s"}) == "/"
    assert server_path("s", {"ingressPath": "/other/mcp"}) == "/other/mcp"  # not under the prefix: as is


def test_settings_read_and_check_the_inventory_variables() -> None:
    s = ApiSettings.from_env({
        "MCP_INVENTORY_URL_TEMPLATE": "https://{namespace}.example:{port}{path}",
        "MCP_INVENTORY_TIMEOUT_SECONDS": "1.5", "MCP_INVENTORY_CONCURRENCY": "2", "MCP_INVENTORY_CACHE_SECONDS": "0",
    })  # fmt: skip
    assert (s.inventory_url_template, s.inventory_timeout_seconds, s.inventory_concurrency,
            s.inventory_cache_seconds) == ("https://{namespace}.example:{port}{path}", 1.5, 2, 0.0)
    assert ApiSettings.from_env({"MCP_INVENTORY_URL_TEMPLATE": ""}).inventory_url_template == ""
    bad = [
        ({"MCP_INVENTORY_URL_TEMPLATE": "http://{host}:{port}{path}"}, "only {name}"),
        ({"MCP_INVENTORY_URL_TEMPLATE": "ftp://{name}:{port}{path}"}, "http:// or https://"),
        ({"MCP_INVENTORY_TIMEOUT_SECONDS": "0"}, "MCP_INVENTORY_TIMEOUT_SECONDS"),
        ({"MCP_INVENTORY_CONCURRENCY": "0"}, "MCP_INVENTORY_CONCURRENCY"),
        ({"MCP_INVENTORY_CACHE_SECONDS": "-1"}, "MCP_INVENTORY_CACHE_SECONDS"),
        ({"MCP_INVENTORY_CACHE_SECONDS": "soon"}, "must be a number"),
    ]
    for env, message in bad:
        with pytest.raises(ValueError, match=re.escape(message)):
            ApiSettings.from_env(env)



GATEWAY = "http://127.0.0.1:{inventoryPort}/.sentinel/inventory{path}"


async def test_through_the_sidecars_inventory_listener_as_in_a_cluster(
    make_api: AppFactory, kube_cluster: LocalKube, servers: Servers, tmp_path: Path
) -> None:
    # The cluster default: the probe goes to each server's inventory port (the seeded demo servers
    # name the stack's sidecar ports), where the sidecar verifies the API's per-server signed token.
    assert DEFAULT_URL_TEMPLATE.endswith(":{inventoryPort}/.sentinel/inventory{path}")
    cfg = StackConfig(data_dir=tmp_path, ports=kube_cluster.cfg.ports)
    key = str(cfg.inventory_keys()[0])
    with Supervisor(cfg) as sup:
        sup.start_all(sidecars_part.components(cfg))
        api = await make_api(inventory_url_template=GATEWAY, inventory_signing_key_file=key,
                             _backends={"kube": kube_cluster.api})
        got, _ = await listing(api, "mcp-servers")
        for name in ("server-a", "server-b"):
            # Unfiltered: every tool the sample serves, though no caller identity was sent.
            assert sorted(t["name"] for t in got[name]["liveInventory"]["tools"]) == SAMPLE_TOOLS, got[name]
            assert got[name]["inventoryDrift"] == {"undeclared": [], "missing": []}
        # Another key (not the one the sidecars trust), and no key at all: refused with 401.
        other = StackConfig(data_dir=tmp_path / "other", ports=cfg.ports)
        for settings in ({"inventory_signing_key_file": str(other.inventory_keys()[0])}, {}):
            wrong = await make_api(inventory_url_template=GATEWAY, _backends={"kube": kube_cluster.api}, **settings)
            got, _ = await listing(wrong, "mcp-servers")
            assert got["server-a"]["liveInventory"] is None
            assert "refused" in got["server-a"]["liveInventoryError"]
            assert "401" in got["server-a"]["liveInventoryError"]
        # The public gateway port has no inventory path at all.
        public = await make_api(inventory_url_template="http://127.0.0.1:{gatewayPort}/.sentinel/inventory{path}",
                                inventory_signing_key_file=key, _backends={"kube": kube_cluster.api})
        got, _ = await listing(public, "mcp-servers")
        assert got["server-a"]["liveInventory"] is None and "404" in got["server-a"]["liveInventoryError"]


async def test_a_token_captured_by_one_servers_address_opens_no_other_server(
    make_api: AppFactory, kube_cluster: LocalKube, kube_namespace: str, servers: Servers, tmp_path: Path
) -> None:
    # A team points its server's address at its own listener and captures what the API sends there.
    captured: list[str] = []

    async def capture(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        found = re.search(r"(?im)^x-sentinel-inventory-token:\s*(\S+)", head)
        if found:
            captured.append(found.group(1))
        writer.write(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    trap = await asyncio.start_server(capture, "127.0.0.1", 0)
    cfg = StackConfig(data_dir=tmp_path, ports=kube_cluster.cfg.ports)
    put_server(kube_cluster, kube_namespace, "evil", servers.sample, ["search"],
               gateway={"inventoryPort": trap.sockets[0].getsockname()[1]})
    try:
        with Supervisor(cfg) as sup:
            sup.start_all(sidecars_part.components(cfg))
            key = str(cfg.inventory_keys()[0])
            api = await make_api(inventory_url_template=GATEWAY, inventory_signing_key_file=key,
                                 _backends={"kube": kube_cluster.api})
            await listing(api, kube_namespace)
            assert captured, "the probe never reached the team's listener"
            # Replayed at once on server-a's inventory listener (same key, same cluster): refused.
            url = cfg.url("sidecar_a_inventory", "/.sentinel/inventory/mcp")
            list_body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
            async with httpx2.AsyncClient(timeout=10) as c:
                r = await c.post(url, json=list_body, headers={"X-Sentinel-Inventory-Token": captured[0]})
            assert r.status_code == 401 and r.json() == {"error": "inventory_unauthorized", "reason": "wrong_server"}
    finally:
        trap.close()


async def test_through_a_tls_gateway_with_the_apis_client_certificate(
    make_api: AppFactory, kube_cluster: LocalKube, servers: Servers, tmp_path: Path
) -> None:
    # A gateway serving TLS with client certificates (its inventory listener too) completes no handshake without one.
    pki = Pki.create(tmp_path)
    server_cert = pki.leaf("gateway", server=True)
    api_cert = pki.leaf("api", uris=("spiffe://example.org/ns/mcp-sentinel/sa/api",))
    cfg = StackConfig(data_dir=tmp_path, ports=kube_cluster.cfg.ports)
    env = {**sidecars_part.sidecar_env(cfg, "server-a", "sidecar_a", "sidecar_a_metrics"),
           "TLS_CERT_FILE": str(server_cert[0]), "TLS_KEY_FILE": str(server_cert[1]),
           "TLS_CLIENT_CA_FILE": str(pki.ca_file)}
    sidecars_part.seed_policy(cfg, "server-a")
    sc = await asyncio.to_thread(SidecarProcess, env, tmp_path / "sc.log", pki.client_context(api_cert))
    template = "https://127.0.0.1:{inventoryPort}/.sentinel/inventory{path}"
    key = str(cfg.inventory_keys()[0])
    try:
        api = await make_api(inventory_url_template=template, inventory_signing_key_file=key,
                             inventory_tls_cert_file=str(api_cert[0]), inventory_tls_key_file=str(api_cert[1]),
                             inventory_tls_ca_file=str(pki.ca_file), _backends={"kube": kube_cluster.api})
        got, _ = await listing(api, "mcp-servers")
        assert sorted(t["name"] for t in got["server-a"]["liveInventory"]["tools"]) == SAMPLE_TOOLS, got["server-a"]
        # Without the client certificate the gateway refuses the handshake: no inventory, a reason.
        bare = await make_api(inventory_url_template=template, inventory_signing_key_file=key,
                              inventory_tls_ca_file=str(pki.ca_file), _backends={"kube": kube_cluster.api})
        got, _ = await listing(bare, "mcp-servers")
        assert got["server-a"]["liveInventory"] is None and got["server-a"]["liveInventoryError"]
    finally:
        sc.stop()


def test_the_shared_inventory_token_is_refused_and_the_signing_key_checked_at_start(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="MCP_INVENTORY_TOKEN .* is no longer accepted"):
        ApiSettings.from_env({"MCP_INVENTORY_TOKEN": "s3cret"})
    with pytest.raises(ValueError, match="cannot read inventory key file"):
        ApiSettings.from_env({"MCP_INVENTORY_SIGNING_KEY_FILE": str(tmp_path / "missing.pem")})
    pki = Pki.create(tmp_path)
    _cert, ec_key = pki.leaf("api")
    with pytest.raises(ValueError, match="must be an Ed25519 key"):
        ApiSettings.from_env({"MCP_INVENTORY_SIGNING_KEY_FILE": str(ec_key)})
    key = StackConfig(data_dir=tmp_path).inventory_keys()[0]
    assert ApiSettings.from_env({"MCP_INVENTORY_SIGNING_KEY_FILE": str(key)}).inventory_signing_key_file == str(key)


def test_inventory_tls_settings_are_checked_at_start(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="set together"):
        ApiSettings.from_env({"MCP_INVENTORY_TLS_CERT_FILE": "/c.pem"})
    with pytest.raises(ValueError, match="cannot load the inventory TLS files"):
        ApiSettings.from_env({"MCP_INVENTORY_TLS_CERT_FILE": str(tmp_path / "no.pem"),
                              "MCP_INVENTORY_TLS_KEY_FILE": str(tmp_path / "no.key")})
    pki = Pki.create(tmp_path)
    cert, key = pki.leaf("api")
    s = ApiSettings.from_env({"MCP_INVENTORY_TLS_CERT_FILE": str(cert), "MCP_INVENTORY_TLS_KEY_FILE": str(key),
                              "MCP_INVENTORY_TLS_CA_FILE": str(pki.ca_file)})
    assert s.inventory_tls_ca_file == str(pki.ca_file)
