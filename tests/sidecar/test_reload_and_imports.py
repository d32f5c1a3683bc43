"""Policy hot reload (revoke within 2 s, corrupt file keeps last good) and the sidecar's import graph."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import httpx2

from mcp_sentinel.policy import compute_revision, parse_document, to_pretty_json
from tests.fixtures.sidecar import ALICE, SidecarStack

META = {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}
HDRS = {
    "Accept": "application/json, text/event-stream",
    "Content-Type": "application/json",
    "MCP-Protocol-Version": "2026-07-28",
    "Mcp-Method": "tools/call",
    "Mcp-Name": "search",
    **ALICE,
}


def _search(stack: SidecarStack) -> httpx2.Response:
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "search", "arguments": {"query": "q"}, "_meta": META},
    }
    return httpx2.post(stack.url("server-a"), content=json.dumps(body), headers=HDRS, timeout=30)


def _revoked_text(stack: SidecarStack) -> str:
    import dataclasses

    path = stack.cfg.policy_file("server-a")
    doc = parse_document(path.read_bytes())
    sess = tuple(dataclasses.replace(s, revoked=True) for s in doc.sessions)
    new = dataclasses.replace(doc, sessions=sess, revision="")
    return to_pretty_json(dataclasses.replace(new, revision=compute_revision(new)))


def test_revoke_takes_effect_within_two_seconds_and_corrupt_file_keeps_last_good(sidecar_stack: SidecarStack) -> None:
    path = sidecar_stack.cfg.policy_file("server-a")
    original = path.read_text()
    assert _search(sidecar_stack).status_code == 200
    # A corrupt document (bad revision) must not replace the active policy.
    path.write_text(original.replace('"consented_trust": "medium"', '"consented_trust": "high"'))
    time.sleep(1.2)
    assert _search(sidecar_stack).status_code == 200
    status = httpx2.get(sidecar_stack.url("server-a", "/.sentinel/config/status"), timeout=10).json()
    assert "revision" in status["last_reload_error"].lower() and status["reload_failures"] >= 1
    assert httpx2.get(sidecar_stack.url("server-a", "/.sentinel/ready"), timeout=10).status_code == 200
    # Revoke alice's session: denial within 2 s.
    path.write_text(_revoked_text(sidecar_stack))
    t0 = time.monotonic()
    while time.monotonic() - t0 < 2.0:
        resp = _search(sidecar_stack)
        if resp.status_code == 401:
            break
        time.sleep(0.05)
    assert resp.status_code == 401 and resp.json()["error"]["data"]["reason"] == "session_revoked"
    metrics = httpx2.get(sidecar_stack.metrics_url("server-a"), timeout=10).text
    assert 'mcp_gateway_policy_reloads_total{result="error"}' in metrics
    assert 'mcp_gateway_policy_reloads_total{result="success"} 2.0' in metrics
    # Deleting the file keeps the last good policy too (a ConfigMap update swaps files).
    path.write_text(original)


def test_no_policy_means_503_for_tool_calls(sidecar_stack: SidecarStack, tmp_path: object) -> None:
    from localstack.config import Ports
    from tests.fixtures.sidecar import SidecarProcess

    ports = Ports.free()
    sc = SidecarProcess(
        {
            "PORT": str(ports.sidecar_a),
            "METRICS_PORT": str(ports.sidecar_a_metrics),
            "LISTEN_HOST": "127.0.0.1",
            "UPSTREAM_URL": sidecar_stack.cfg.url("sample_mcp"),
            "POLICY_FILE": str(sidecar_stack.cfg.path("policies", "absent.json")),
        },
        sidecar_stack.cfg.path("logs", "nopolicy.log"),
    )
    try:
        body = {
            "jsonrpc": "2.0",
            "id": 5,
            "method": "tools/call",
            "params": {"name": "search", "arguments": {"query": "q"}, "_meta": META},
        }
        resp = httpx2.post(
            f"http://127.0.0.1:{ports.sidecar_a}/mcp", content=json.dumps(body), headers=HDRS, timeout=30
        )
        assert resp.status_code == 503 and resp.json()["error"]["data"]["reason"] == "policy_unavailable"
        ready = httpx2.get(f"http://127.0.0.1:{ports.sidecar_a}/.sentinel/ready", timeout=10)
        assert ready.status_code == 503 and ready.json()["reason"] == "policy_not_loaded"
    finally:
        sc.stop()


def test_sidecar_import_graph_is_light() -> None:
    code = (
        "import sys, sidecar, sidecar.app, sidecar.__main__\n"
        "bad = [m for m in ('fastapi','pydantic','temporalio','kafka','clickhouse_connect','chdb','psycopg','mcp')"
        " if m in sys.modules]\n"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "", f"sidecar imports heavy modules: {out.stdout}"
