"""Settings of the local API server (environment first, command line overrides)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ApiServerSettings:
    """Where the local API server listens, keeps its state and writes its kubeconfig."""

    host: str = "127.0.0.1"
    port: int = 16443
    state_file: Path | None = None
    kubeconfig_out: Path | None = None
    token: str = ""  # empty: reuse the token saved in the state file, else generate one
    history: int = 1000  # watch events kept for resuming; older resourceVersions get 410
    bookmark_interval: float = 60.0  # seconds between BOOKMARK events on watches that ask for them
    max_watch_seconds: int = 1800  # cap (and default) for a watch's timeoutSeconds
    pod_log_dir: Path | None = None  # `<dir>/<ns>/<pod>/<container>.log` back pods/{name}/log (pod_logs.py)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> ApiServerSettings:
        """Read `KUBE_APISERVER_*` variables; absent ones keep the defaults."""
        state = environ.get("KUBE_APISERVER_STATE")
        kubeconfig = environ.get("KUBE_APISERVER_KUBECONFIG_OUT")
        pod_logs = environ.get("KUBE_APISERVER_POD_LOG_DIR")
        return cls(
            host=environ.get("KUBE_APISERVER_HOST", cls.host),
            port=int(environ.get("KUBE_APISERVER_PORT", cls.port)),
            state_file=Path(state) if state else None,
            kubeconfig_out=Path(kubeconfig) if kubeconfig else None,
            token=environ.get("KUBE_APISERVER_TOKEN", ""),
            history=int(environ.get("KUBE_APISERVER_HISTORY", cls.history)),
            bookmark_interval=float(environ.get("KUBE_APISERVER_BOOKMARK_INTERVAL", cls.bookmark_interval)),
            max_watch_seconds=int(environ.get("KUBE_APISERVER_MAX_WATCH_SECONDS", cls.max_watch_seconds)),
            pod_log_dir=Path(pod_logs) if pod_logs else None,
        )
