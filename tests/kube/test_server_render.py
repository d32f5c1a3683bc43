"""`mcp_sentinel.kube.server_render`: pure MCPServer -> objects (no cluster needed)."""

from __future__ import annotations

from typing import Any

import pytest

from mcp_sentinel.kube.server_render import (
    InvalidServer,
    RenderSettings,
    image_ref,
    public_path,
    public_url,
    render_deployment,
    render_ingress,
    render_service,
    spec_hash,
)

SETTINGS = RenderSettings(public_base_url="https://sentinel.example.com")


def server(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"image": "acme/pay", "gateway": {"enabled": True}, "auth": {"mode": "platform"}}
    return {"metadata": {"name": "pay", "namespace": "team-a", "uid": "u-1"}, "spec": {**base, **spec}}


def test_public_path_and_url_follow_prefix_and_ingress_path() -> None:
    assert public_path("pay", {}) == "/pay/mcp"
    assert public_path("pay", {"publicPathPrefix": "/billing/"}) == "/billing/mcp"
    assert public_path("pay", {"ingressPath": "/x/v2/mcp/"}) == "/x/v2/mcp"
    assert public_url("https://h/", server()) == "https://h/pay/mcp"
    assert public_url("", server()) == ""
    assert public_url("https://h", server(ingressPath="/pay/v2/mcp")) == "https://h/pay/v2/mcp"
    # The Ingress routes /<publicPathPrefix or name> only: a path outside it is not claimed as the URL.
    assert public_url("https://h", server(ingressPath="/elsewhere/mcp")) == ""


@pytest.mark.parametrize(
    ("image", "tag", "want"),
    [("acme/pay", None, "acme/pay:latest"), ("acme/pay", "1.2", "acme/pay:1.2"), ("acme/pay:3", "1.2", "acme/pay:3"),
     ("reg:5000/pay", "1", "reg:5000/pay:1"), ("acme/pay@sha256:ab", "1", "acme/pay@sha256:ab")],
)
def test_image_tag_applies_only_to_untagged_images(image: str, tag: str | None, want: str) -> None:
    assert image_ref({"image": image, "imageTag": tag}) == want


@pytest.mark.parametrize("mode", ["header", "none", "mtls"])
def test_header_mode_and_gateway_less_servers_are_never_routed_publicly(mode: str) -> None:
    """SECURITY: only a gateway that authenticates callers itself (platform, oauth) gets a public route."""
    assert render_ingress(server(auth={"mode": mode}), SETTINGS) is None
    assert render_ingress(server(gateway={"enabled": False}), SETTINGS) is None
    labels = render_deployment(server(auth={"mode": mode}), SETTINGS)["spec"]["template"]["metadata"]["labels"]
    assert "mcp-sentinel.io/public-gateway" not in labels
    assert public_url("https://h", server(auth={"mode": mode})) == ""


def test_inventory_port_is_never_routed_and_server_port_never_exposed() -> None:
    """SECURITY: the ingress reaches only the gateway port; the MCP server listens on loopback."""
    ing = render_ingress(server(gateway={"enabled": True, "port": 9000}), SETTINGS)
    assert ing is not None
    backends = [p["backend"]["service"]["port"]["number"] for r in ing["spec"]["rules"] for p in r["http"]["paths"]]
    assert backends == [9000]
    svc_ports = {p["name"] for p in render_service(server())["spec"]["ports"]}
    assert svc_ports == {"gateway", "inventory"}
    mcp = render_deployment(server(), SETTINGS)["spec"]["template"]["spec"]["containers"][0]
    assert mcp["name"] == "mcp-server" and "ports" not in mcp


def test_nothing_to_run_and_remote_without_gateway_are_invalid() -> None:
    with pytest.raises(InvalidServer, match="spec.image or spec.gateway.upstreamURL"):
        render_deployment(server(image=""), SETTINGS)
    remote = server(image="", gateway={"enabled": False, "upstreamURL": "https://x/mcp"})
    with pytest.raises(InvalidServer, match="needs gateway.enabled"):
        render_deployment(remote, SETTINGS)


def test_rollout_strategy_and_hash_follow_the_spec() -> None:
    recreate = render_deployment(server(rollout={"strategy": "Recreate"}), SETTINGS)
    assert recreate["spec"]["strategy"] == {"type": "Recreate"}
    a = render_deployment(server(imageTag="1"), SETTINGS)
    b = render_deployment(server(imageTag="2"), SETTINGS)
    hashes = [d["metadata"]["annotations"]["mcp-sentinel.io/spec-hash"] for d in (a, b)]
    assert hashes[0] != hashes[1] and hashes[0] == spec_hash(a["spec"])
    assert render_deployment(server(imageTag="1"), SETTINGS) == a  # pure and stable


@pytest.mark.parametrize(("replicas", "want"), [(None, "1"), (1, "1"), (3, "3")])
def test_the_gateway_learns_how_many_replicas_share_its_quotas(replicas: int | None, want: str) -> None:
    spec = {} if replicas is None else {"replicas": replicas}
    dep = render_deployment(server(**spec), SETTINGS)
    gateway = next(c for c in dep["spec"]["template"]["spec"]["containers"] if c["name"] == "mcp-gateway")
    assert {"name": "QUOTA_REPLICAS", "value": want} in gateway["env"]
