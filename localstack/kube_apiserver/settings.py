"""Settings of the local API server (environment first, command line overrides)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mcp_sentinel.env import integer, number, text


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
        """Read `KUBE_APISERVER_*` variables; absent ones keep the defaults (SettingsError names a bad one)."""
        state = text(environ, "KUBE_APISERVER_STATE")
        kubeconfig = text(environ, "KUBE_APISERVER_KUBECONFIG_OUT")
        pod_logs = text(environ, "KUBE_APISERVER_POD_LOG_DIR")
        return cls(
            host=text(environ, "KUBE_APISERVER_HOST", cls.host),
            port=integer(environ, "KUBE_APISERVER_PORT", cls.port, minimum=0, maximum=65535),
            state_file=Path(state) if state else None,
            kubeconfig_out=Path(kubeconfig) if kubeconfig else None,
            token=text(environ, "KUBE_APISERVER_TOKEN"),
            history=integer(environ, "KUBE_APISERVER_HISTORY", cls.history, minimum=1),
            bookmark_interval=number(environ, "KUBE_APISERVER_BOOKMARK_INTERVAL", cls.bookmark_interval,
                                     positive=True),
            max_watch_seconds=integer(environ, "KUBE_APISERVER_MAX_WATCH_SECONDS", cls.max_watch_seconds, minimum=1),
            pod_log_dir=Path(pod_logs) if pod_logs else None,
        )
