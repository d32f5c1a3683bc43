"""The `sentinel` operator CLI: parsing, error paths, and commands against real servers."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mcp_sentinel.cli.client import CliError
from mcp_sentinel.cli.main import build_parser, main
from mcp_sentinel.cli.remote import load_documents, to_api_body
from mcp_sentinel.stack.config import REPO_ROOT, Ports, StackConfig
from mcp_sentinel.stack.parts import front_door
from mcp_sentinel.stack.supervisor import Supervisor
from tests.cli.fake_api import ADMIN_KEY, FakeApi, serve


@pytest.fixture()
def api() -> Iterator[FakeApi]:
    with serve() as state:
        yield state


@pytest.fixture()
def cfg(tmp_path: Path) -> StackConfig:
    return StackConfig(data_dir=tmp_path, ports=Ports.free())


def run(cfg: StackConfig, api: FakeApi | None, *argv: str) -> int:
    extra = ["--api-url", api.url, "--api-key", ADMIN_KEY] if api else []
    return main([*argv, *extra], config=cfg)


def _dead_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# --- parsing ---------------------------------------------------------------------------------


def test_parser_knows_every_command() -> None:
    p = build_parser()
    assert p.parse_args(["events", "--limit", "5", "--decision", "deny", "--tool-name", "x"]).tool_name == "x"
    assert p.parse_args(["restart", "--all"]).all is True
    assert p.parse_args(["policy", "inspect", "server-a", "-N", "team-a"]).namespace == "team-a"
    assert p.parse_args(["grant", "apply", "-f", "g.yaml"]).file == "g.yaml"
    assert p.parse_args(["session", "list", "--json"]).json is True
    assert p.parse_args(["logs", "api", "-n", "3"]).lines == 3
    assert p.parse_args(["up", "--detach", "--only", "kafka"]).only == "kafka"
    assert p.parse_args(["down"]).command == "down"


@pytest.mark.parametrize("argv", [["events", "--limit", "ten"], ["grant", "apply"], ["policy"], ["bogus"]])
def test_bad_arguments_exit_2(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(argv)
    assert exc.value.code == 2


# --- error paths -----------------------------------------------------------------------------


def test_unreachable_api_names_the_url_with_a_hint(cfg: StackConfig, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{_dead_port()}"
    assert main(["events", "--api-url", url], config=cfg) == 2
    err = capsys.readouterr().err
    assert url in err and "sentinel up" in err


def test_console_script_exit_code_and_stderr(cfg: StackConfig) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mcp_sentinel.cli.main", "grant", "list", "--api-url", f"http://127.0.0.1:{_dead_port()}"],
        capture_output=True, text=True, timeout=60, cwd=REPO_ROOT,
    )
    assert proc.returncode == 2
    assert "cannot reach the API" in proc.stderr and proc.stdout == ""


def test_wrong_key_is_exit_1_with_hint(cfg: StackConfig, api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["events", "--api-url", api.url, "--api-key", "wrong"], config=cfg) == 1
    assert "HTTP 401" in (err := capsys.readouterr().err) and "--api-key" in err


def test_limit_out_of_range_is_refused_before_calling(cfg: StackConfig, api: FakeApi) -> None:
    assert run(cfg, api, "events", "--limit", "0") == 2
    assert api.requests == []


# --- API commands ----------------------------------------------------------------------------


def test_events_filters_and_output(cfg: StackConfig, api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(cfg, api, "events", "--limit", "5", "--decision", "deny", "--server", "server-a") == 0
    assert api.requests[-1]["query"] == {"limit": "5", "decision": "deny", "server": "server-a"}
    out = capsys.readouterr().out
    assert "DECISION" in out.splitlines()[0]
    assert "delete_file" in out and "alice" in out and "tool_not_granted" in out  # payload fields flattened
    assert run(cfg, api, "events", "--json") == 0
    events = json.loads(capsys.readouterr().out)
    assert events[0]["tool_name"] == "delete_file"


def test_restart(cfg: StackConfig, api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(cfg, api, "restart", "ingest") == 0
    assert api.requests[-1]["body"] == {"component": "ingest"}
    assert "restarting ingest" in capsys.readouterr().err
    assert run(cfg, api, "restart", "--all", "--json") == 0
    assert api.requests[-1]["body"] == {"all": True}
    assert json.loads(capsys.readouterr().out)["success"] is True
    assert run(cfg, api, "restart") == 2  # neither a component nor --all
    assert run(cfg, api, "restart", "nope") == 1
    assert "unknown component" in capsys.readouterr().err


def test_policy_inspect_from_api(cfg: StackConfig, api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.policy = {"schema_version": "v1", "revision": "sha256:abc", "grants": []}
    assert run(cfg, api, "policy", "inspect", "server-a", "--json") == 0
    assert api.requests[-1]["query"] == {"namespace": "mcp-servers", "server": "server-a"}
    out = json.loads(capsys.readouterr().out)
    assert out == {"source": "configmap/x", "revision": "sha256:abc",
                   "document": {"schema_version": "v1", "revision": "sha256:abc", "grants": []}}


def test_policy_inspect_falls_back_to_the_local_file(cfg: StackConfig, capsys: pytest.CaptureFixture[str]) -> None:
    path = cfg.policy_file("server-a")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"schema_version": "v1", "revision": "sha256:local"}))
    url = f"http://127.0.0.1:{_dead_port()}"
    assert main(["policy", "inspect", "server-a", "--api-url", url], config=cfg) == 0
    captured = capsys.readouterr()
    assert "sha256:local" in captured.out and str(path) in captured.out
    assert "showing the local policy file" in captured.err
    # Neither API nor file: a clear error that mentions both.
    assert main(["policy", "inspect", "server-z", "--api-url", url], config=cfg) == 2
    err = capsys.readouterr().err
    assert url in err and "server-z.json" in err


def test_grant_apply_yaml_and_crd_shapes_then_list(
    cfg: StackConfig, api: FakeApi, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "grants.yaml"
    f.write_text(
        "name: g1\nnamespace: mcp-servers\nserverRef: {name: server-a}\nsubject: {humanID: alice}\n"
        "allowedSideEffects: [read]\n---\n"
        "apiVersion: mcpruntime.org/v1alpha1\nkind: MCPAccessGrant\nmetadata: {name: g2, namespace: team-a}\n"
        "spec: {serverRef: {name: server-a}, subject: {agentID: bot}, allowedSideEffects: [read, write]}\n"
    )
    assert run(cfg, api, "grant", "apply", "-f", str(f)) == 0
    posted = [r["body"] for r in api.requests if r["method"] == "POST"]
    assert [b["name"] for b in posted] == ["g1", "g2"]
    assert posted[1]["namespace"] == "team-a" and posted[1]["allowedSideEffects"] == ["read", "write"]
    assert "[2/2] applying grant team-a/g2" in capsys.readouterr().err
    assert run(cfg, api, "grant", "list", "-N", "team-a", "--json") == 0
    assert [g["name"] for g in json.loads(capsys.readouterr().out)] == ["g2"]
    assert run(cfg, api, "grant", "list") == 0
    table = capsys.readouterr().out
    assert "g1" in table and "server-a" in table and table.splitlines()[0].startswith("NAMESPACE")


def test_session_apply_json_list_and_api_rejection(
    cfg: StackConfig, api: FakeApi, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "s.json"
    f.write_text(json.dumps([{"name": "s1", "serverRef": {"name": "server-a"}, "subject": {"agentID": "bot"}}]))
    assert run(cfg, api, "session", "apply", "-f", str(f), "--json") == 0
    assert json.loads(capsys.readouterr().out)[0]["session"]["name"] == "s1"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"name": "s2", "subject": {"agentID": "bot"}}))
    assert run(cfg, api, "session", "apply", "-f", str(bad)) == 1
    assert "serverRef.name is required" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("content", "message"),
    [("a: [unclosed", "not valid YAML"), ("", "no documents"), ("- 1\n- 2\n", "not an object"),
     ("kind: MCPAgentSession\nmetadata: {name: x}\nspec: {}\n", "expected kind MCPAccessGrant"),
     ("serverRef: {name: a}\n", "has no name")],
)
def test_apply_file_errors_exit_2_without_calling_the_api(
    cfg: StackConfig, api: FakeApi, tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, message: str
) -> None:
    f = tmp_path / "x.yaml"
    f.write_text(content)
    assert run(cfg, api, "grant", "apply", "-f", str(f)) == 2
    assert message in capsys.readouterr().err
    assert api.requests == []


def test_apply_missing_file(cfg: StackConfig, api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(cfg, api, "grant", "apply", "-f", "/nonexistent/g.yaml") == 2
    assert "cannot read /nonexistent/g.yaml" in capsys.readouterr().err


def test_document_helpers() -> None:
    assert to_api_body({"name": "a", "x": 1}, "MCPAccessGrant") == {"name": "a", "x": 1}
    with pytest.raises(CliError):
        to_api_body({"kind": "Other", "metadata": {"name": "a"}}, "MCPAccessGrant")
    _ = load_documents


# --- local commands --------------------------------------------------------------------------


def test_logs_tail_and_unknown_component(cfg: StackConfig, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["logs", "api"], config=cfg) == 2
    assert "has the stack been started" in capsys.readouterr().err
    log = cfg.path("logs", "api.log")
    log.parent.mkdir(parents=True)
    log.write_text("".join(f"line {i}\n" for i in range(5000)))
    assert main(["logs", "api", "-n", "3"], config=cfg) == 0
    assert capsys.readouterr().out.splitlines() == ["line 4997", "line 4998", "line 4999"]
    assert main(["logs", "nope"], config=cfg) == 2
    assert "known: api" in capsys.readouterr().err


def test_status_reports_real_components(cfg: StackConfig, capsys: pytest.CaptureFixture[str]) -> None:
    # Nothing running: stopped, exit 1.
    assert main(["status", "--only", "front_door", "--json"], config=cfg) == 1
    (row,) = json.loads(capsys.readouterr().out)
    assert (row["name"], row["state"], row["pid"]) == ("front_door", "stopped", None)
    with Supervisor(cfg) as sup:
        sup.start_all(front_door.components(cfg))
        assert main(["status", "--only", "front_door,prometheus_not_a_part", "--json"], config=cfg) == 0
        (row,) = json.loads(capsys.readouterr().out)
        assert row["state"] == "healthy" and row["pid"] == sup.running["front_door"].process.pid
        assert main(["status", "--only", "front_door"], config=cfg) == 0
        assert "healthy" in capsys.readouterr().out
