"""Where the local stack lives: one data folder and one port map.

The same `StackConfig` drives `sentinel up` (fixed, documented ports) and the test suite
(free ports, a temporary data folder), so tests exercise the exact wiring users run.
"""

from __future__ import annotations

import dataclasses
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def default_data_dir() -> Path:
    """The git-ignored folder that holds all local state (`SENTINEL_DATA_DIR` overrides)."""
    return Path(os.environ.get("SENTINEL_DATA_DIR", str(REPO_ROOT / ".data")))


@dataclass(frozen=True)
class Ports:
    """Loopback ports of every local component. Defaults are the documented local-stack ports."""

    front_door: int = 18080
    api: int = 8080
    api_metrics: int = 9090
    ingest: int = 8081
    ingest_metrics: int = 9091
    ui: int = 8082
    processor: int = 8085
    processor_metrics: int = 9102
    dispatcher_metrics: int = 9104
    sample_mcp: int = 8090
    sidecar_a: int = 8091
    sidecar_a_metrics: int = 9103
    sidecar_b: int = 8092
    sidecar_b_metrics: int = 9113
    sidecar_a_inventory: int = 8093
    sidecar_b_inventory: int = 8094
    clickhouse_http: int = 18123
    kafka: int = 19092
    s3: int = 19300
    kube_api: int = 16443
    postgres: int = 15432
    temporal: int = 17233
    temporal_ui: int = 18233
    temporal_http: int = 17243
    temporal_metrics: int = 17244
    worker_metrics: int = 9105
    prometheus: int = 19090

    @classmethod
    def free(cls) -> Ports:
        """A port map of currently free loopback ports (for tests running beside a live stack)."""
        names = [f.name for f in dataclasses.fields(cls)]
        socks = []
        try:
            for _ in names:
                s = socket.socket()
                s.bind(("127.0.0.1", 0))
                socks.append(s)
            return cls(**{n: s.getsockname()[1] for n, s in zip(names, socks, strict=True)})
        finally:
            for s in socks:
                s.close()


@dataclass(frozen=True)
class StackConfig:
    """Everything a component needs to know about its neighbours in the local stack."""

    data_dir: Path = field(default_factory=default_data_dir)
    ports: Ports = field(default_factory=Ports)
    host: str = "127.0.0.1"
    # Local-only credentials; production reads these from Secrets (knative/).
    admin_api_key: str = "sentinel-local-admin-key"
    # Unbound: local development and benchmarks write any server with it (INGEST_ALLOW_UNBOUND_KEYS).
    ingest_api_key: str = "sentinel-local-ingest-key"
    # Signs each local sidecar's own ingest credential (mcp_sentinel.gateway_credentials).
    ingest_gateway_secret: str = "sentinel-local-gateway-secret-not-for-production"
    # What the local namespace's team label would say (the platform's namespace → team mapping).
    namespace_team: str = "local-team"
    # The local dispatcher's credential towards the processor (Knative sends its OIDC token instead).
    processor_delivery_token: str = "sentinel-local-processor-delivery-token"
    jwt_secret: str = "sentinel-local-jwt-secret-change-me-in-production"
    namespace: str = "mcp-servers"

    def url(self, port_name: str, path: str = "") -> str:
        """`http://127.0.0.1:<port><path>` for a named port."""
        return f"http://{self.host}:{getattr(self.ports, port_name)}{path}"

    def policy_file(self, server: str, namespace: str = "mcp-servers") -> Path:
        """Where the API renders a server's policy in local mode and its sidecar reads it."""
        return self.data_dir / "policies" / namespace / f"{server}.json"

    def inventory_keys(self) -> tuple[Path, Path]:
        """The local live-inventory key pair (private for the API, public for the sidecars), made on first use.

        Production has the API's key in a Secret and the public key in a ConfigMap (knative/config.yaml).
        """
        from mcp_sentinel.inventory_token import generate_pem, load_signing_key, public_pem

        private, public = self.path("inventory", "signing.pem"), self.path("inventory", "public.pem")
        if not (private.exists() and public.exists()):
            private.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(generate_pem())
            public.write_bytes(public_pem(load_signing_key(str(private))))
        return private, public

    @property
    def kubeconfig(self) -> Path:
        """Kubeconfig pointing the official client at the local API server."""
        return self.data_dir / "kube" / "kubeconfig"

    def path(self, *parts: str) -> Path:
        """A path under the data folder (created lazily by the component that owns it)."""
        return self.data_dir.joinpath(*parts)
