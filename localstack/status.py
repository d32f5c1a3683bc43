"""Health of the local stack's processes, as another process sees them (stdlib only).

The API's `/api/runtime/components` uses this when `COMPONENTS_BACKEND=local`: the component
table is the one `sentinel up` starts (`local_stack(cfg)`), rebuilt from the run folder and the
port map the `api` part passes down (`SENTINEL_RUN_DIR`, `SENTINEL_STACK_PORTS`). A component is
*running* when its pidfile names a live process and *healthy* when its probe answers.

Probes are side-effect free and short: a component's health URL (GET, 2xx) or TCP port. Some
components are started with a custom readiness check that does more than look (the `kube` part's
installs CRDs and seeds the demo on its first pass), so those are probed on their port instead.
All probes run concurrently with one deadline, so one hung component costs the page at most
`timeout` seconds.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import socket
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from localstack.config import Ports, StackConfig
from localstack.supervisor import Component

# Components whose start-up check is not a pure probe: the port that tells they serve.
PROBE_PORTS = {"kube": "kube_api", "kafka": "kafka", "postgres": "postgres", "temporal": "temporal",
               "worker": "worker_metrics"}


@dataclass(frozen=True)
class ComponentStatus:
    """One local component as the operations page shows it."""

    name: str
    description: str
    state: str  # "healthy", "unhealthy" (running, probe fails) or "stopped"
    healthy: bool
    pid: int | None
    started_at: float | None  # epoch seconds (pidfile written at start)
    uptime_seconds: float | None
    probe: str
    detail: str

    def as_dict(self) -> dict[str, object]:
        """JSON shape of `/api/runtime/components` rows (plus `ready` as in cluster mode)."""
        return {**dataclasses.asdict(self), "ready": self.healthy, "namespace": "local"}


def stack_env(cfg: StackConfig) -> dict[str, str]:
    """Variables that let another process rebuild `cfg` (set by the `api` part)."""
    return {
        "SENTINEL_RUN_DIR": str(cfg.path("run")),
        "SENTINEL_STACK_PORTS": json.dumps(dataclasses.asdict(cfg.ports), separators=(",", ":")),
    }


def stack_config(run_dir: str, ports_json: str, host: str = "127.0.0.1") -> StackConfig:
    """The StackConfig a supervisor with this run folder and port map uses (ValueError if malformed)."""
    if not run_dir:
        raise ValueError("SENTINEL_RUN_DIR is not set")
    ports = Ports()
    if ports_json:
        try:
            raw = json.loads(ports_json)
            known = {f.name for f in dataclasses.fields(Ports)}
            ports = dataclasses.replace(ports, **{k: int(v) for k, v in dict(raw).items() if k in known})
        except (ValueError, TypeError) as exc:
            raise ValueError(f"SENTINEL_STACK_PORTS is not a JSON object of port numbers: {exc}") from None
    return StackConfig(data_dir=Path(run_dir).parent, ports=ports, host=host)


def _pid(run_dir: Path, name: str) -> tuple[int | None, float | None]:
    path = run_dir / f"{name}.pid"
    try:
        pid = int(path.read_text().strip())
        started = path.stat().st_mtime
    except (OSError, ValueError):
        return None, None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None, None
    except PermissionError:
        pass  # alive, owned by another user (Postgres runs as `postgres`)
    return pid, started


def _http(url: str, timeout: float) -> tuple[bool, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # loopback health URL from our own table
            ok = 200 <= int(resp.status) < 300
            return ok, f"GET {url} -> {resp.status}"
    except urllib.error.HTTPError as exc:
        return False, f"GET {url} -> {exc.code}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return False, f"GET {url} failed: {reason}"


def _tcp(host: str, port: int, timeout: float) -> tuple[bool, str]:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True, f"tcp {host}:{port} open"
    except OSError as exc:
        return False, f"tcp {host}:{port}: {exc.strerror or exc}"


def probe_target(cfg: StackConfig, comp: Component) -> str:
    """What is probed: a URL, `tcp <host>:<port>`, or "" when the component has no probe."""
    if comp.health_url:
        return comp.health_url
    port = comp.health_port
    if port is None and comp.name in PROBE_PORTS:
        port = getattr(cfg.ports, PROBE_PORTS[comp.name])
    return f"tcp {cfg.host}:{port}" if port is not None else ""


def probe(cfg: StackConfig, comp: Component, timeout: float = 1.0) -> tuple[bool, str]:
    """(healthy, what the probe saw) for one component, without side effects."""
    target = probe_target(cfg, comp)
    if target.startswith("http"):
        return _http(target, timeout)
    if target:
        host, _, port = target.removeprefix("tcp ").rpartition(":")
        return _tcp(host, int(port), timeout)
    return True, "no probe; running counts as healthy"


def _plain(description: str) -> str:
    d = description.strip()
    return d[1:-1] if d.startswith("(") and d.endswith(")") else d


def local_status(
    cfg: StackConfig, components: list[Component], timeout: float = 1.5, now: float | None = None
) -> list[ComponentStatus]:
    """Every component's state, probing all of them concurrently within `timeout` seconds."""
    run_dir = cfg.path("run")
    pids = {c.name: _pid(run_dir, c.name) for c in components}
    results: dict[str, tuple[bool, str]] = {}
    with ThreadPoolExecutor(max_workers=max(1, len(components))) as pool:
        futures = {pool.submit(probe, cfg, c, timeout): c.name for c in components if pids[c.name][0] is not None}
        done, _ = wait(futures, timeout=timeout + 0.5)
        for fut, name in futures.items():
            results[name] = fut.result() if fut in done else (False, f"no answer within {timeout:g}s")
    at = time.time() if now is None else now
    out = []
    for c in components:
        pid, started = pids[c.name]
        if pid is None:
            healthy, detail, state = False, "not running (no live process in the run folder)", "stopped"
        else:
            healthy, detail = results[c.name]
            state = "healthy" if healthy else "unhealthy"
        out.append(ComponentStatus(
            name=c.name,
            description=_plain(c.description),
            state=state,
            healthy=healthy,
            pid=pid,
            started_at=started,
            uptime_seconds=None if started is None else max(0.0, round(at - started, 1)),
            probe=probe_target(cfg, c),
            detail=detail,
        ))
    return out


def load_components(cfg: StackConfig) -> list[Component]:
    """The local stack's component table for `cfg` (parts print nothing to our stdout)."""
    from localstack.components import local_stack

    # A part may warn on stderr while building its table (prometheus without its binary); that warning is
    # for `sentinel up`'s console, not for every API process that reads the table.
    with open(os.devnull, "w") as sink, contextlib.redirect_stderr(sink):
        return local_stack(cfg)


def status_rows(cfg: StackConfig, components: list[Component], timeout: float = 1.5) -> list[dict[str, object]]:
    """`local_status` as JSON-ready rows."""
    return [s.as_dict() for s in local_status(cfg, components, timeout)]

