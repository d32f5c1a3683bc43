"""`sentinel` against the real API process (with the real Postgres, local Kubernetes API server
and ClickHouse it needs), started through the same stack parts `sentinel up` uses."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from mcp_sentinel.cli.main import main
from mcp_sentinel.stack.components import local_stack
from mcp_sentinel.stack.config import Ports, StackConfig
from mcp_sentinel.stack.supervisor import Supervisor

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stack() -> Iterator[StackConfig]:
    # Not pytest's tmp_path: its 0700 root-owned parents are unreachable for the postgres OS user.
    data = Path(tempfile.mkdtemp(prefix="sentinel-cli-"))
    data.chmod(0o755)
    cfg = StackConfig(data_dir=data, ports=Ports.free())
    try:
        with Supervisor(cfg) as sup:
            sup.start_all(local_stack(cfg, {"postgres", "kube", "clickhouse", "processor", "api"}))
            _store_one_event(cfg)
            yield cfg
    finally:
        shutil.rmtree(data, ignore_errors=True)


def _store_one_event(cfg: StackConfig) -> None:
    """One audit event through the real processor (as the KafkaSource would deliver it)."""
    # Envelope <-> CloudEvent mapping of mcp_sentinel/cloudevents_codec.py: source, type, time, data.
    event = {
        "specversion": "1.0", "id": "cli-test-1", "source": "server-a-gateway", "type": "mcp.request",
        "time": datetime.now(UTC).isoformat().replace("+00:00", "Z"), "datacontenttype": "application/json",
        "data": {"server": "server-a", "namespace": "mcp-servers", "decision": "deny", "tool_name": "delete_file",
                 "human_id": "carol", "reason": "tool_not_granted"},
    }
    resp = httpx.post(cfg.url("processor", "/"), content=json.dumps(event),
                      headers={"content-type": "application/cloudevents+json"}, timeout=30)
    assert resp.status_code == 200 and resp.json()["inserted"] == 1, resp.text


def _json(capsys: pytest.CaptureFixture[str]) -> object:
    return json.loads(capsys.readouterr().out)


def test_grant_apply_list_and_policy_inspect(stack: StackConfig, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "grant.yaml"
    f.write_text(
        "apiVersion: mcpruntime.org/v1alpha1\nkind: MCPAccessGrant\n"
        "metadata: {name: cli-grant, namespace: mcp-servers}\n"
        "spec: {serverRef: {name: server-a}, subject: {humanID: carol, agentID: cli-agent},\n"
        "       maxTrust: medium, allowedSideEffects: [read]}\n"
    )
    assert main(["grant", "apply", "-f", str(f), "--json"], config=stack) == 0, capsys.readouterr().err
    applied = _json(capsys)
    assert applied[0]["grant"]["name"] == "cli-grant"  # type: ignore[index]
    assert main(["grant", "list", "-N", "mcp-servers", "--json"], config=stack) == 0
    grants = {g["name"]: g for g in _json(capsys)}  # type: ignore[attr-defined]
    assert grants["cli-grant"]["subject"]["humanID"] == "carol"
    assert main(["policy", "inspect", "server-a", "--json"], config=stack) == 0
    policy = _json(capsys)
    assert policy["revision"]  # type: ignore[index]
    names = {g.get("name") for g in policy["document"].get("grants", [])}  # type: ignore[index]
    assert "cli-grant" in names


def test_api_validation_errors_reach_the_operator(stack: StackConfig, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "bad.json"
    f.write_text(json.dumps({"name": "no-side-effects", "namespace": "mcp-servers",
                             "serverRef": {"name": "server-a"}, "subject": {"humanID": "x"}}))
    assert main(["grant", "apply", "-f", str(f)], config=stack) == 1
    err = capsys.readouterr().err
    assert "HTTP 400" in err and "allowedSideEffects" in err


def test_events_and_sessions(stack: StackConfig, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["events", "--limit", "5", "--decision", "deny", "--server", "server-a", "--json"], config=stack) == 0
    events = _json(capsys)
    assert [e["tool_name"] for e in events] == ["delete_file"]  # type: ignore[attr-defined]
    assert main(["events", "--decision", "allow", "--json"], config=stack) == 0
    assert _json(capsys) == []
    assert main(["events", "--limit", "5"], config=stack) == 0
    table = capsys.readouterr().out
    assert "delete_file" in table and "tool_not_granted" in table
    assert main(["session", "list", "-N", "mcp-servers", "--json"], config=stack) == 0
    assert isinstance(_json(capsys), list)


def test_wrong_key_against_the_real_api(stack: StackConfig, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["events", "--api-key", "not-a-key"], config=stack) == 1
    assert "HTTP 401" in capsys.readouterr().err
