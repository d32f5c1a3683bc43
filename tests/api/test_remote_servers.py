"""Registering a remote MCP server (`gateway.upstreamURL`, no image) through the API: what is stored,
what is refused (400 without a source or with a bad URL, 403 for a non-admin pointing a gateway at
the platform's own host), and that an image stays the way to register an image server.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcp_sentinel.env import SettingsError
from mcp_sentinel.upstream_url import UpstreamURLError, check_upstream_url, internal_host
from tests.fixtures.kube import LocalKube
from tests.helpers.api import ADMIN_KEY, Api, AppFactory

ADMIN = {"x-api-key": ADMIN_KEY}


@pytest.fixture
async def setup(make_api: AppFactory, kube_cluster: LocalKube) -> tuple[Api, str, dict[str, str]]:
    api = await make_api(_backends={"kube": kube_cluster.api})
    slug = f"t{uuid.uuid4().hex[:8]}"
    team = (await api.client.post("/api/runtime/teams", json={"slug": slug}, headers=ADMIN)).json()["team"]
    kube_cluster.kube.ensure_namespace(team["namespace"])
    member = await api.signup(f"m-{slug}@example.com")
    await api.store.add_member(team["id"], member["user"]["id"], "owner")
    return api, team["namespace"], {"Authorization": f"Bearer {member['access_token']}"}


async def _post(api: Api, headers: dict[str, str], **body: Any) -> Any:
    return await api.client.post("/api/runtime/servers", headers=headers, json=body)


async def test_a_remote_server_is_stored_with_its_gateway_on(
    setup: tuple[Api, str, dict[str, str]], kube_cluster: LocalKube
) -> None:
    api, ns, owner = setup
    r = await _post(api, owner, name="remote", namespace=ns,
                    gateway={"upstreamURL": "https://mcp.example.com/tenant/"})  # fmt: skip
    assert r.status_code == 200, r.text
    spec = kube_cluster.kube.servers.get(ns, "remote")["spec"]
    assert "image" not in spec
    assert spec["gateway"]["upstreamURL"] == "https://mcp.example.com/tenant"  # normalized base
    assert spec["gateway"]["enabled"] is True
    r = await _post(api, owner, name="remote", namespace=ns, update=True,
                    gateway={"upstreamURL": "https://mcp.example.com", "enabled": False})  # fmt: skip
    assert r.status_code == 400 and "gateway.enabled cannot be false" in r.json()["message"], r.text


@pytest.mark.parametrize(
    ("gateway", "status", "needle"),
    [
        (None, 400, "image is required (or gateway.upstreamURL"),
        ({"upstreamURL": "ftp://mcp.example.com"}, 400, "absolute http(s) URL"),
        ({"upstreamURL": "https://user:pw@mcp.example.com"}, 400, "credentials"),
        ({"upstreamURL": "https://mcp.example.com/?x=1"}, 400, "without query"),
        ({"upstreamURL": 42}, 400, "non-empty string"),
        ({"upstreamURL": "http://127.0.0.1:16443"}, 403, "only admins"),
        ({"upstreamURL": "http://localhost:8080"}, 403, "only admins"),
        ({"upstreamURL": "http://169.254.169.254/latest"}, 403, "only admins"),
        ({"upstreamURL": "http://[::1]:8080"}, 400, "ASCII host name"),  # IPv6 literals: name them by DNS
    ],
)
async def test_bad_sources_are_refused(
    setup: tuple[Api, str, dict[str, str]], gateway: dict[str, Any] | None, status: int, needle: str
) -> None:
    api, ns, owner = setup
    r = await _post(api, owner, name="bad", namespace=ns, gateway=gateway)
    assert r.status_code == status and needle in r.json()["message"], r.text


async def test_an_admin_may_front_a_server_on_this_host(setup: tuple[Api, str, dict[str, str]]) -> None:
    api, ns, _ = setup
    r = await _post(api, ADMIN, name="local-remote", namespace=ns, gateway={"upstreamURL": "http://127.0.0.1:8090"})
    assert r.status_code == 200, r.text


async def test_an_image_server_keeps_its_upstream_and_gateway_choice(
    setup: tuple[Api, str, dict[str, str]], kube_cluster: LocalKube
) -> None:
    api, ns, owner = setup
    r = await _post(api, owner, name="img", namespace=ns, image="example/mcp:1", port=8088)
    assert r.status_code == 200, r.text
    assert "gateway" not in kube_cluster.kube.servers.get(ns, "img")["spec"]


def test_upstream_url_rules() -> None:
    assert check_upstream_url(" http://h:1/a/ ") == "http://h:1/a"
    for bad in ("", "h:1", "http://", "http://h:99999", "http://h/ x", "https://h/#f", "http://a@h"):
        with pytest.raises(UpstreamURLError):
            check_upstream_url(bad)
    assert internal_host("http://127.0.0.2:1") and internal_host("http://app.localhost")
    assert internal_host("http://0.0.0.0:1") and internal_host("http://[fe80::1]:1")
    assert not internal_host("https://mcp.example.com") and not internal_host("http://10.1.2.3")


async def test_where_the_local_reconciler_owns_servers_the_api_does_not_signal_the_workflow(
    make_api: AppFactory, kube_cluster: LocalKube
) -> None:
    # A Temporal address nothing answers at: had the API tried, the answer would be not-configured/deferred.
    api = await make_api(_backends={"kube": kube_cluster.api}, temporal_address="127.0.0.1:1",
                         server_lifecycle_workflow=False)  # fmt: skip
    ns = f"t-{uuid.uuid4().hex[:10]}"
    kube_cluster.kube.ensure_namespace(ns)
    r = await _post(api, ADMIN, name="owned", namespace=ns, gateway={"upstreamURL": "https://mcp.example.com"})
    assert r.status_code == 200, r.text
    assert r.json()["lifecycle"] == {"state": "external"}


def test_server_lifecycle_workflow_setting(tmp_path: Path) -> None:
    from functions.api.settings import ApiSettings
    from localstack.config import Ports, StackConfig
    from localstack.parts.api import api_env
    from localstack.parts.worker import worker_env

    assert ApiSettings().server_lifecycle_workflow is True  # a cluster: the workflow owns servers
    cfg = StackConfig(data_dir=tmp_path, ports=Ports())
    assert api_env(cfg)["SERVER_LIFECYCLE_WORKFLOW"] == "false"  # the local stack: the reconciler does
    assert worker_env(cfg)["SERVER_RECONCILE_INTERVAL_SECONDS"] == "0"
    for raw, want in (("false", False), ("0", False), ("off", False), ("true", True), ("", True)):
        assert ApiSettings.from_env({"SERVER_LIFECYCLE_WORKFLOW": raw}).server_lifecycle_workflow is want, raw
    with pytest.raises(SettingsError, match="SERVER_LIFECYCLE_WORKFLOW"):  # a typo stops the process
        ApiSettings.from_env({"SERVER_LIFECYCLE_WORKFLOW": "flase"})


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(st.one_of(st.text(max_size=80), st.builds(lambda s: "http://" + s, st.text(max_size=40)),
                 st.builds(lambda s: f"https://[{s}]/mcp", st.text(max_size=20))))
def test_any_text_is_a_url_or_a_named_refusal_never_a_crash(raw: str) -> None:
    """Found by schemathesis: `http://[D:]` made urlsplit raise ValueError, a 500 behind the API."""
    try:
        url = check_upstream_url(raw)
    except UpstreamURLError:
        return
    assert url.startswith(("http://", "https://"))


def test_a_bracketed_host_that_is_no_ip_is_refused_by_name() -> None:
    with pytest.raises(UpstreamURLError, match="invalid host"):
        check_upstream_url("http://[D:]/mcp")
