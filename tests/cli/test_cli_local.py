"""`sentinel` parts that need no API: parsing, unreachable-API errors, `logs`, `status`, document helpers."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from localstack.config import REPO_ROOT, Ports, StackConfig
from localstack.parts import front_door
from localstack.supervisor import Supervisor
from mcp_sentinel.cli.client import CliError
from mcp_sentinel.cli.main import build_parser, main
from mcp_sentinel.cli.remote import load_documents, to_api_body
from tests.helpers.cli import dead_url


@pytest.fixture()
def cfg(tmp_path: Path) -> StackConfig:
    return StackConfig(data_dir=tmp_path, ports=Ports.free())


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


# --- unreachable API (a closed port: a real refused connection) -------------------------------


@pytest.mark.parametrize("argv", [["events"], ["grant", "list"], ["session", "list"], ["restart", "--all"]])
def test_unreachable_api_names_the_url_with_a_hint(
    cfg: StackConfig, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    url = dead_url()
    assert main([*argv, "--api-url", url], config=cfg) == 2
    err = capsys.readouterr().err
    assert url in err and "sentinel up" in err and "--api-url" in err


def test_unreachable_api_while_applying(cfg: StackConfig, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "g.yaml"
    f.write_text("name: g\nserverRef: {name: server-a}\nsubject: {humanID: a}\nallowedSideEffects: [read]\n")
    assert main(["grant", "apply", "-f", str(f), "--api-url", dead_url()], config=cfg) == 2
    assert "cannot reach the API" in capsys.readouterr().err


def test_an_api_that_never_answers_times_out_with_a_hint(cfg: StackConfig, capsys: pytest.CaptureFixture[str]) -> None:
    # A listening socket nobody accepts from: the connection succeeds, no answer ever comes.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        assert main(["events", "--api-url", url, "--timeout", "0.5"], config=cfg) == 2
    err = capsys.readouterr().err
    assert f"the API at {url} did not answer GET /api/events within 0.5 s" in err and "--timeout" in err


@pytest.mark.parametrize("value", ["0", "-1", "soon", "4000"])
def test_bad_timeout_is_a_usage_error(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["events", "--timeout", value])
    assert exc.value.code == 2 and "--timeout" in capsys.readouterr().err


def test_timeout_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SENTINEL_TIMEOUT", "2.5")
    assert build_parser().parse_args(["grant", "list"]).timeout == 2.5
    monkeypatch.delenv("SENTINEL_TIMEOUT")
    assert build_parser().parse_args(["grant", "list"]).timeout == 15.0


def test_console_script_exit_code_and_stderr() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mcp_sentinel.cli.main", "grant", "list", "--api-url", dead_url()],
        capture_output=True, text=True, timeout=60, cwd=REPO_ROOT,
    )
    assert proc.returncode == 2
    assert "cannot reach the API" in proc.stderr and proc.stdout == ""


def test_document_helpers(tmp_path: Path) -> None:
    assert to_api_body({"name": "a", "x": 1}, "MCPAccessGrant") == {"name": "a", "x": 1}
    crd = {"kind": "MCPAccessGrant", "metadata": {"name": "a", "namespace": "n"}, "spec": {"subject": {}}}
    assert to_api_body(crd, "MCPAccessGrant") == {"name": "a", "namespace": "n", "subject": {}}
    with pytest.raises(CliError) as exc:
        to_api_body({"kind": "Other", "metadata": {"name": "a"}}, "MCPAccessGrant")
    assert exc.value.exit_code == 2
    f = tmp_path / "docs.yaml"
    f.write_text("- {name: a}\n- {name: b}\n---\nname: c\n---\n")
    assert [d["name"] for d in load_documents(str(f))] == ["a", "b", "c"]


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
