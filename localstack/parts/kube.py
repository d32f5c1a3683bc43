"""The `kube` part: the local Kubernetes API server, our CRDs, and the demo objects.

Runs `python -m localstack.kube_apiserver` with state under `<data>/kube/state.json` (so the
stack survives restarts) and writes `cfg.kubeconfig`. Once it answers, the supervisor's health
check installs the CRDs and seeds the demo through the official client, the same path the API
and workflows use; both steps are idempotent.
"""

from __future__ import annotations

from collections.abc import Callable

from localstack.config import StackConfig
from localstack.supervisor import PYTHON, Component, http_ok


def api_server_url(cfg: StackConfig) -> str:
    """Base URL of the local API server."""
    return cfg.url("kube_api")


def bootstrap_check(cfg: StackConfig) -> Callable[[], bool]:
    """A health check that, once the server is up, installs the CRDs and seeds the demo (once)."""
    done = False

    def check() -> bool:
        nonlocal done
        if done:
            return http_ok(api_server_url(cfg) + "/readyz")
        if not http_ok(api_server_url(cfg) + "/readyz"):
            return False
        # The kubeconfig is rewritten right after the port is bound; wait for this run's copy.
        if not cfg.kubeconfig.exists() or api_server_url(cfg) not in cfg.kubeconfig.read_text():
            return False
        from localstack.kube_seed import seed_demo
        from mcp_sentinel.kube.client import install_crds, load_kube
        from mcp_sentinel.kube.resources import SentinelKube

        api = load_kube({"KUBECONFIG": str(cfg.kubeconfig)})
        try:
            install_crds(api)
            seed_demo(SentinelKube(api), cfg)
        finally:
            api.close()  # type: ignore[no-untyped-call]
        done = True
        return True

    return check


def components(cfg: StackConfig) -> list[Component]:
    """The local API server, healthy once CRDs are installed and the demo is seeded."""
    return [
        Component(
            name="kube",
            argv=[
                PYTHON,
                "-m",
                "localstack.kube_apiserver",
                "--host",
                cfg.host,
                "--port",
                str(cfg.ports.kube_api),
                "--state",
                str(cfg.path("kube", "state.json")),
                "--kubeconfig-out",
                str(cfg.kubeconfig),
            ],
            health_check=bootstrap_check(cfg),
            startup_timeout=60.0,
            description=f"(local Kubernetes API, {api_server_url(cfg)})",
        )
    ]
