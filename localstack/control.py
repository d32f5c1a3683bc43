"""A file-based control channel into a running local-stack supervisor (stdlib only).

Other processes (the Temporal worker's local restart backend, `sentinel` commands) drop a
request file under `<data>/run/control/requests/`; the process that owns the `Supervisor`
calls `serve_pending(supervisor)` from its main loop, acts, and writes the outcome under
`results/`. Files rather than a socket because the supervisor already lives by its run folder
(pidfiles) and a request survives either side restarting: a worker that dies while waiting
finds the result on its retry, keyed by the same request id.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from localstack.supervisor import Supervisor

_SAFE_ID = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class ControlResult:
    """What the supervisor did with one request."""

    request_id: str
    component: str
    ok: bool
    detail: str


def _atomic_write(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


class ControlDir:
    """The request/result folders of one local stack (`<run_dir>/control`)."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.requests = run_dir / "control" / "requests"
        self.results = run_dir / "control" / "results"

    @staticmethod
    def safe_id(request_id: str) -> str:
        """A request id usable as a file name."""
        return _SAFE_ID.sub("_", request_id)[:200]

    def components(self) -> list[str]:
        """Components the supervisor currently runs (from its pidfiles)."""
        return sorted(p.stem for p in self.run_dir.glob("*.pid"))

    def request_restart(self, component: str, request_id: str) -> None:
        """Ask for a restart; repeating the same request id never restarts twice."""
        rid = self.safe_id(request_id)
        if (self.results / f"{rid}.json").exists() or (self.requests / f"{rid}.json").exists():
            return
        _atomic_write(
            self.requests / f"{rid}.json",
            {"id": rid, "action": "restart", "component": component, "requested_at": time.time()},
        )

    def result(self, request_id: str) -> ControlResult | None:
        """The outcome of a request, or None while it is pending."""
        path = self.results / f"{self.safe_id(request_id)}.json"
        try:
            data = json.loads(path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        return ControlResult(str(data["id"]), str(data["component"]), bool(data["ok"]), str(data["detail"]))

    def pending(self) -> list[dict[str, Any]]:
        """Requests not yet served, oldest first (unreadable files are answered as errors)."""
        out = []
        for path in sorted(self.requests.glob("*.json"), key=lambda p: p.stat().st_mtime):
            try:
                out.append(json.loads(path.read_text()))
            except (OSError, json.JSONDecodeError) as exc:
                out.append({"id": path.stem, "action": "invalid", "component": "", "error": str(exc)})
        return out

    def answer(self, request_id: str, component: str, ok: bool, detail: str) -> None:
        """Record an outcome and retire the request."""
        _atomic_write(
            self.results / f"{request_id}.json",
            {"id": request_id, "component": component, "ok": ok, "detail": detail, "answered_at": time.time()},
        )
        with contextlib.suppress(FileNotFoundError):
            (self.requests / f"{request_id}.json").unlink()


def serve_pending(supervisor: Supervisor, control: ControlDir | None = None) -> list[ControlResult]:
    """Act on every pending request against `supervisor`; call this from the supervisor's main loop."""
    from localstack.supervisor import StartError

    control = control or ControlDir(supervisor.run_dir)
    done = []
    for req in control.pending():
        rid, comp = str(req.get("id", "")), str(req.get("component", ""))
        if req.get("action") != "restart":
            ok, detail = False, f"unsupported control request: {req.get('error') or req.get('action')}"
        elif comp not in supervisor.running:
            ok, detail = False, f"unknown component {comp!r}"
        else:
            try:
                running = supervisor.restart(comp)
                ok, detail = True, f"restarted (pid {running.process.pid})"
            except StartError as exc:
                ok, detail = False, str(exc).splitlines()[0]
        control.answer(rid, comp, ok, detail)
        done.append(ControlResult(rid, comp, ok, detail))
    return done
