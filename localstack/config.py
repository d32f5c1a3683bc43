"""Where the local stack lives: one data folder and one port map.

The same `StackConfig` drives `sentinel up` (fixed, documented ports) and the test suite
(free ports, a temporary data folder), so tests exercise the exact wiring users run.
"""

from __future__ import annotations

import dataclasses
import os
import random
import socket
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


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
    reconciler_metrics: int = 9106
    prometheus: int = 19090

    @classmethod
    def free(cls) -> Ports:
        """A port map of currently free loopback ports (for tests running beside a live stack)."""
        return cls(**{f.name: free_port() for f in dataclasses.fields(cls)})


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


_PICKED: set[int] = set()


def free_port(host: str = "127.0.0.1") -> int:
    """A loopback port that is free now and that the kernel will not hand out on its own.

    A port from `bind(0)` lies in the ephemeral range, which the kernel also uses for the source
    port of every outgoing connection: between closing the probe socket and the component binding
    it, a client anywhere on the machine can take it (CI saw Postgres fail with "Address already
    in use" that way). Ports below the ephemeral range are only ever taken by an explicit bind, so
    picking one at random there (and never twice in this process) cannot race the kernel.
    """
    low, high = 20000, _ephemeral_low() - 1
    defaults = {f.default for f in dataclasses.fields(Ports)}
    if high - low > 1000:
        for _ in range(500):
            port = random.randint(low, high)
            if port in _PICKED or port in defaults:
                continue
            with socket.socket() as s:
                try:
                    s.bind((host, port))
                except OSError:
                    continue
            _PICKED.add(port)
            return port
    with socket.socket() as s:  # a machine whose ephemeral range starts low: the kernel's pick
        s.bind((host, 0))
        return int(s.getsockname()[1])


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
