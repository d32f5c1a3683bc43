"""The sidecar processes the reconciler runs: one `python -m sidecar` per remote server.

Sidecars stay in the reconciler's process group, so stopping the reconciler's group (what the
supervisor and `sentinel down` do) stops them too; each also gets SIGTERM if the reconciler dies
(PR_SET_PDEATHSIG), so none outlives it. Spawning happens on the main thread only: the death
signal follows the *thread* that forked the child.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from localstack.config import REPO_ROOT, free_port

log = logging.getLogger(__name__)
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


# What a sidecar inherits from the reconciler's environment: the basics a process needs, nothing else.
# Never the reconciler's own credentials (GATEWAY_CREDENTIAL_SECRET mints ingest keys for any server,
# KUBECONFIG holds the API server token): a sidecar gets only its own, per-server credential.
_INHERITED = ("PATH", "HOME", "LANG", "TZ", "TMPDIR", "VIRTUAL_ENV", "SSL_CERT_FILE", "SSL_CERT_DIR")
_INHERITED_PREFIXES = ("LC_", "OTEL_EXPORTER_")


def inherited(environ: Mapping[str, str]) -> dict[str, str]:
    """The part of `environ` a spawned sidecar may see."""
    return {k: v for k, v in environ.items() if k in _INHERITED or k.startswith(_INHERITED_PREFIXES)}


def fingerprint(env: Mapping[str, str]) -> str:
    """A digest of a sidecar's configuration: a change means a restart (policy changes do not: it polls)."""
    return hashlib.sha256(json.dumps(sorted(env.items())).encode()).hexdigest()[:16]


@dataclass
class Sidecar:
    """One running sidecar."""

    key: str  # namespace/name
    process: subprocess.Popen[bytes]
    port: int
    metrics_port: int
    fingerprint: str
    log_path: Path

    @property
    def url(self) -> str:
        """Base URL of its proxy port (what the front door routes to)."""
        return f"http://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        """Whether the process is still running."""
        return self.process.poll() is None


class SidecarPool:
    """Starts, readiness-checks and stops sidecars by `namespace/name`."""

    def __init__(self, log_dir: Path, host: str = "127.0.0.1") -> None:
        self.log_dir = log_dir
        self.host = host
        self.running: dict[str, Sidecar] = {}

    def start(self, key: str, env: Mapping[str, str]) -> Sidecar:
        """Start a sidecar with `env` plus freshly picked ports (stopping any previous one for `key`)."""
        self.stop(key)
        port, metrics = free_port(self.host), free_port(self.host)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"sidecar-{key.replace('/', '-')}.log"
        full = {**inherited(os.environ), **env, "PORT": str(port), "METRICS_PORT": str(metrics),
                "LISTEN_HOST": self.host, "PYTHONPATH": str(REPO_ROOT), "PYTHONUNBUFFERED": "1"}
        with open(log_path, "ab") as out:
            proc = subprocess.Popen(  # argv is fixed; env values come from validated settings and specs
                [sys.executable, "-m", "sidecar"], env=full, stdout=out, stderr=subprocess.STDOUT,
                cwd=str(REPO_ROOT), preexec_fn=_die_with_parent,  # main thread only (module doc)
            )
        sidecar = Sidecar(key, proc, port, metrics, fingerprint(env), log_path)
        self.running[key] = sidecar
        log.info("started sidecar %s pid %d on %s", key, proc.pid, sidecar.url)
        return sidecar

    def wait_ready(self, sidecar: Sidecar, timeout: float) -> str | None:
        """None once its policy is active (`/.sentinel/ready`); else why not (exited, or not ready in time)."""
        deadline = time.monotonic() + timeout
        url = sidecar.url + "/.sentinel/ready"
        while True:
            code = sidecar.process.poll()
            if code is not None:
                return f"sidecar exited with code {code}; see {sidecar.log_path}"
            with contextlib.suppress(urllib.error.URLError, OSError, ValueError):
                with urllib.request.urlopen(url, timeout=1) as resp:  # loopback, our own sidecar
                    if resp.status == 200:
                        return None
            if time.monotonic() >= deadline:
                return f"sidecar not ready after {timeout:.0f}s; see {sidecar.log_path}"
            time.sleep(0.05)

    def stop(self, key: str, grace: float = 5.0) -> None:
        """SIGTERM, then SIGKILL after `grace`; returns once the process is gone."""
        sidecar = self.running.pop(key, None)
        if sidecar is None:
            return
        proc = sidecar.process
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                proc.wait(timeout=5)
        log.info("stopped sidecar %s (pid %d)", key, proc.pid)

    def stop_all(self) -> None:
        """Stop every sidecar."""
        for key in list(self.running):
            self.stop(key)
