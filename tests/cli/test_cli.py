"""`sentinel` commands against the real API process (real Postgres, local Kubernetes API server,
ClickHouse, processor, Temporal and worker; see `conftest.py`). Each command's effect is checked on
the real system: what the API then returns, and the policy file rendered under POLICY_OUTPUT_DIR.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from localstack.cli import main
from localstack.config import REPO_ROOT
from mcp_sentinel.cli.remote import EVENT_FILTERS
from mcp_sentinel.storage.queries import FILTER_NAMES
from tests.helpers.cli import TEAM_NS, TEAM_SERVER, Stack, dead_url

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


def out_json(capsys: pytest.CaptureFixture[str]) -> Any:
    return json.loads(capsys.readouterr().out)


def event_ids(stack: Stack, capsys: pytest.CaptureFixture[str], *argv: str) -> list[str]:
    assert main(["events", "--json", *argv], config=stack.cfg) == 0, capsys.readouterr().err
    return [e["id"] for e in out_json(capsys)]


def policy_doc(stack: Stack, server: str, namespace: str = "mcp-servers") -> dict[str, Any]:
    """The document the API rendered for the server's sidecar (local mode: a file)."""
    doc: dict[str, Any] = json.loads(stack.cfg.policy_file(server, namespace).read_text())
    return doc


def names(items: list[dict[str, Any]]) -> set[str]:
    return {str(i.get("name")) for i in items}


# --- events ----------------------------------------------------------------------------------


def test_events_newest_first_and_limit(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    assert event_ids(stack, capsys) == ["cli-event-2", "cli-event-1"]
    assert event_ids(stack, capsys, "--limit", "1") == ["cli-event-2"]


def test_events_table_flattens_payload_fields(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["events", "--limit", "5", "--decision", "deny"], config=stack.cfg) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["TIMESTAMP", "SERVER", "DECISION", "TOOL_NAME", "HUMAN_ID", "AGENT_ID", "REASON"]
    assert len(lines) == 2
    assert lines[1].split()[1:] == ["server-a", "deny", "delete_file", "carol", "cli-agent", "tool_not_granted"]
    assert main(["events", "--human-id", "nobody"], config=stack.cfg) == 0
    assert capsys.readouterr().out.strip() == "no events"


def test_every_cli_filter_is_one_the_api_applies() -> None:
    # The API ignores unknown filter names, so a CLI flag it does not know would silently match everything.
    assert set(EVENT_FILTERS) == {*FILTER_NAMES, "since", "until"}


@pytest.mark.parametrize("name", [f for f in EVENT_FILTERS if f not in ("since", "until")])
def test_each_event_filter_narrows_real_results(
    stack: Stack, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    first, second = stack.events
    attr = {"event_type": "type", "trace_id": "traceparent"}.get(name, name)

    def value(event: dict[str, Any]) -> str:
        raw = event.get(attr, event["data"].get(name))
        return str(raw).split("-")[1] if name == "trace_id" else str(raw)

    flag = "--" + name.replace("_", "-")
    assert event_ids(stack, capsys, flag, value(first)) == [first["id"]]
    assert event_ids(stack, capsys, flag, value(second)) == [second["id"]]
    assert event_ids(stack, capsys, flag, "no-such-value") == []


def test_since_until_and_combined_filters(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    first, second = stack.events
    assert event_ids(stack, capsys, "--since", second["time"]) == [second["id"]]
    assert event_ids(stack, capsys, "--until", second["time"]) == [first["id"]]  # until is exclusive
    assert event_ids(stack, capsys, "--decision", "deny", "--server", "server-b") == []  # ANDed
    assert event_ids(stack, capsys, "--decision", "deny", "--server", "server-a") == [first["id"]]


def test_api_rejected_filter_is_exit_1_with_its_message(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["events", "--since", "yesterday"], config=stack.cfg) == 1
    err = capsys.readouterr().err
    assert "HTTP 400" in err and "since must be RFC 3339 or YYYY-MM-DD" in err


@pytest.mark.parametrize("limit", ["0", "1001", "-5"])
def test_limit_out_of_range_is_refused_before_calling(
    stack: Stack, capsys: pytest.CaptureFixture[str], limit: str
) -> None:
    # Pointed at a closed port: had the CLI called, the error would be "cannot reach the API".
    assert main(["events", "--limit", limit, "--api-url", dead_url()], config=stack.cfg) == 2
    err = capsys.readouterr().err
    assert "--limit must be between 1 and 1000" in err and "cannot reach" not in err


def test_wrong_key_is_exit_1_with_hint(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["events", "--api-key", "not-a-key"], config=stack.cfg) == 1
    err = capsys.readouterr().err
    assert "HTTP 401" in err and "--api-key" in err
    assert main(["grant", "list", "--api-key", "not-a-key"], config=stack.cfg) == 1
    assert "HTTP 401" in capsys.readouterr().err


def test_environment_supplies_url_and_key(stack: Stack) -> None:
    env = {**os.environ, "SENTINEL_API_URL": stack.cfg.url("api"), "SENTINEL_API_KEY": stack.cfg.admin_api_key}
    proc = subprocess.run([sys.executable, "-m", "mcp_sentinel.cli.main", "events", "--json", "--limit", "1"],
                          capture_output=True, text=True, timeout=60, cwd=REPO_ROOT, env=env)
    assert proc.returncode == 0, proc.stderr
    assert [e["id"] for e in json.loads(proc.stdout)] == [stack.events[1]["id"]]


# --- grants ----------------------------------------------------------------------------------


def test_grant_apply_yaml_plain_and_crd_documents(
    stack: Stack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "grants.yaml"
    f.write_text(
        "name: g-plain\nnamespace: mcp-servers\nserverRef: {name: server-a}\nsubject: {humanID: erin}\n"
        "allowedSideEffects: [read]\n---\n"
        "apiVersion: mcpruntime.org/v1alpha1\nkind: MCPAccessGrant\n"
        f"metadata: {{name: g-crd, namespace: {TEAM_NS}}}\n"
        f"spec: {{serverRef: {{name: {TEAM_SERVER}}}, subject: {{agentID: bot}}, maxTrust: high,\n"
        "       allowedSideEffects: [read, write]}\n"
    )
    assert main(["grant", "apply", "-f", str(f)], config=stack.cfg) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == "applied 2 grants"
    assert "[1/2] applying grant mcp-servers/g-plain" in captured.err
    assert f"[2/2] applying grant {TEAM_NS}/g-crd" in captured.err
    # The API now has both, each in its namespace, with the fields the documents carried.
    plain = stack.api("GET", "/api/runtime/grants/mcp-servers/g-plain")["grant"]
    assert plain["subject"]["humanID"] == "erin" and plain["allowedSideEffects"] == ["read"]
    crd = stack.api("GET", f"/api/runtime/grants/{TEAM_NS}/g-crd")["grant"]
    assert crd["serverRef"]["name"] == TEAM_SERVER and crd["maxTrust"] == "high"
    assert crd["allowedSideEffects"] == ["read", "write"] and crd["subject"]["agentID"] == "bot"
    # ... and rendered each into its server's policy file (what the sidecar enforces).
    assert "g-plain" in names(policy_doc(stack, "server-a")["grants"])
    team_policy = policy_doc(stack, TEAM_SERVER, TEAM_NS)
    assert names(team_policy["grants"]) == {"g-crd"}


def test_grant_list_filters_by_namespace_json_and_table(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    stack.api("POST", "/api/runtime/grants", json={
        "name": "g-list", "namespace": TEAM_NS, "serverRef": {"name": TEAM_SERVER}, "subject": {"humanID": "fay"},
        "allowedSideEffects": ["read"]})
    assert main(["grant", "list", "-N", TEAM_NS, "--json"], config=stack.cfg) == 0
    listed = out_json(capsys)
    assert listed and {g["namespace"] for g in listed} == {TEAM_NS} and "g-list" in names(listed)
    assert main(["grant", "list", "--namespace", "mcp-servers", "--json"], config=stack.cfg) == 0
    shared = out_json(capsys)
    assert "alice-server-a" in names(shared) and "g-list" not in names(shared)  # the seeded demo grant
    assert main(["grant", "list", "-N", "no-such-namespace", "--json"], config=stack.cfg) == 0
    assert out_json(capsys) == []
    assert main(["grant", "list"], config=stack.cfg) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:4] == ["NAMESPACE", "NAME", "SERVER", "SUBJECT"]
    row = next(line.split() for line in table if " g-list " in f" {line} ")
    assert row[:3] == [TEAM_NS, "g-list", TEAM_SERVER] and '"humanID":"fay"' in row[3]


def test_grant_apply_json_with_result_shapes(stack: Stack, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "g.json"
    f.write_text(json.dumps({"name": "g-json", "serverRef": {"name": "server-b"}, "subject": {"humanID": "gus"},
                             "allowedSideEffects": ["read"], "toolRules": [{"name": "search", "decision": "deny"}]}))
    assert main(["grant", "apply", "-f", str(f), "--json"], config=stack.cfg) == 0
    captured = capsys.readouterr()
    assert captured.err == ""  # progress is not printed in --json mode
    (result,) = json.loads(captured.out)
    assert result["grant"]["name"] == "g-json" and result["grant"]["namespace"] == "mcp-servers"  # API default
    assert result["policy"]["revision"] == policy_doc(stack, "server-b")["revision"]
    rules = {g["name"]: g for g in policy_doc(stack, "server-b")["grants"]}["g-json"]
    assert "search" in json.dumps(rules)


def test_grant_apply_from_stdin(stack: Stack, monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str]) -> None:
    doc = ("kind: MCPAccessGrant\nmetadata: {name: g-stdin}\n"
           "spec: {serverRef: {name: server-a}, subject: {teamID: team-stdin}, allowedSideEffects: [destructive]}\n")
    monkeypatch.setattr(sys, "stdin", io.StringIO(doc))
    assert main(["grant", "apply", "-f", "-"], config=stack.cfg) == 0
    assert capsys.readouterr().out.strip() == "applied 1 grant"
    grant = stack.api("GET", "/api/runtime/grants/mcp-servers/g-stdin")["grant"]
    assert grant["subject"] == {"teamID": "team-stdin"} and grant["allowedSideEffects"] == ["destructive"]


def test_grant_apply_console_script_reads_stdin(stack: Stack) -> None:
    doc = json.dumps([{"name": "g-pipe", "serverRef": {"name": "server-a"}, "subject": {"agentID": "piped"},
                       "allowedSideEffects": ["write"]}])
    proc = subprocess.run(
        [sys.executable, "-m", "mcp_sentinel.cli.main", "grant", "apply", "-f", "-",
         "--api-url", stack.cfg.url("api"), "--api-key", stack.cfg.admin_api_key],
        input=doc, capture_output=True, text=True, timeout=60, cwd=REPO_ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "applied 1 grant" and "[1/1] applying grant -/g-pipe" in proc.stderr
    assert stack.api("GET", "/api/runtime/grants/mcp-servers/g-pipe")["grant"]["subject"] == {"agentID": "piped"}


def test_api_validation_error_stops_at_the_bad_document(
    stack: Stack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "two.yaml"
    f.write_text("name: g-before\nserverRef: {name: server-a}\nsubject: {humanID: hal}\nallowedSideEffects: [read]\n"
                 "---\nname: g-bad\nserverRef: {name: server-a}\nsubject: {humanID: hal}\n")
    assert main(["grant", "apply", "-f", str(f)], config=stack.cfg) == 1
    err = capsys.readouterr().err
    assert "POST /api/runtime/grants -> HTTP 400" in err and "allowedSideEffects is required" in err
    # A wrongly typed field: the API's schema message, not a Python repr.
    f.write_text("name: g-typed\nserverRef: {name: server-a}\nsubject: {humanID: hal}\nallowedSideEffects: read\n")
    assert main(["grant", "apply", "-f", str(f)], config=stack.cfg) == 1
    err = capsys.readouterr().err
    assert "HTTP 400" in err and "allowedSideEffects" in err and "{'" not in err
    # Documents are applied in order: the first one landed, the rejected one did not.
    assert "g-before" in names(stack.api("GET", "/api/runtime/grants")["grants"])
    assert "g-bad" not in names(stack.api("GET", "/api/runtime/grants")["grants"])


def test_grant_for_an_unknown_server_is_exit_1(stack: Stack, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "g.yaml"
    f.write_text("name: g-ghost\nserverRef: {name: ghost}\nsubject: {humanID: ivy}\nallowedSideEffects: [read]\n")
    assert main(["grant", "apply", "-f", str(f)], config=stack.cfg) == 1
    err = capsys.readouterr().err
    assert "HTTP 404" in err and 'unknown serverRef: MCPServer "ghost" not found' in err


@pytest.mark.parametrize(
    ("content", "message"),
    [("a: [unclosed", "not valid YAML"), ("", "no documents"), ("- 1\n- 2\n", "document 1 is not an object"),
     ("kind: MCPAgentSession\nmetadata: {name: x}\nspec: {}\n", "expected kind MCPAccessGrant"),
     ("serverRef: {name: server-a}\n", "document 1 has no name"),
     ("name: ok-one\n---\nspec: {serverRef: {name: a}}\n", "document 2 has no name")],
)
def test_apply_file_errors_exit_2_without_calling_the_api(
    stack: Stack, tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, message: str
) -> None:
    f = tmp_path / "x.yaml"
    f.write_text(content)
    before = stack.api("GET", "/api/runtime/grants")["grants"]
    assert main(["grant", "apply", "-f", str(f)], config=stack.cfg) == 2
    err = capsys.readouterr().err
    assert message in err and "HTTP" not in err
    assert stack.api("GET", "/api/runtime/grants")["grants"] == before


def test_apply_missing_file(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["grant", "apply", "-f", "/nonexistent/g.yaml"], config=stack.cfg) == 2
    assert "cannot read /nonexistent/g.yaml" in capsys.readouterr().err


# --- sessions --------------------------------------------------------------------------------


def test_session_apply_json_list_then_visible_and_rendered(
    stack: Stack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "s.json"
    f.write_text(json.dumps([
        {"name": "s-json", "serverRef": {"name": "server-a"}, "subject": {"agentID": "bot"},
         "consentedTrust": "medium", "expiresAt": "2099-01-01T00:00:00Z"},
    ]))
    assert main(["session", "apply", "-f", str(f), "--json"], config=stack.cfg) == 0
    (result,) = out_json(capsys)
    assert result["session"]["name"] == "s-json" and result["session"]["consentedTrust"] == "medium"
    assert result["session"]["expiresAt"] == "2099-01-01T00:00:00Z"
    assert main(["session", "list", "-N", "mcp-servers", "--json"], config=stack.cfg) == 0
    listed = {s["name"]: s for s in out_json(capsys)}
    assert listed["s-json"]["subject"]["agentID"] == "bot"
    assert "s-json" in names(policy_doc(stack, "server-a")["sessions"])


def test_session_apply_crd_document_and_table(stack: Stack, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "s.yaml"
    f.write_text("apiVersion: mcpruntime.org/v1alpha1\nkind: MCPAgentSession\n"
                 f"metadata: {{name: s-crd, namespace: {TEAM_NS}}}\n"
                 f"spec: {{serverRef: {{name: {TEAM_SERVER}}}, subject: {{humanID: jo}}, consentedTrust: high}}\n")
    assert main(["session", "apply", "-f", str(f)], config=stack.cfg) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == "applied 1 session" and f"applying session {TEAM_NS}/s-crd" in captured.err
    assert stack.api("GET", f"/api/runtime/sessions/{TEAM_NS}/s-crd")["session"]["consentedTrust"] == "high"
    assert "s-crd" in names(policy_doc(stack, TEAM_SERVER, TEAM_NS)["sessions"])
    assert main(["session", "list", "-N", TEAM_NS], config=stack.cfg) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:5] == ["NAMESPACE", "NAME", "SERVER", "SUBJECT", "CONSENTEDTRUST"]
    (row,) = [line.split() for line in table[1:]]
    assert row[:3] == [TEAM_NS, "s-crd", TEAM_SERVER] and row[4] == "high" and row[5] == "False"


def test_session_api_rejection_and_wrong_kind(stack: Stack, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"name": "s-bad", "subject": {"agentID": "bot"}}))
    assert main(["session", "apply", "-f", str(bad)], config=stack.cfg) == 1
    assert "HTTP 400" in (err := capsys.readouterr().err) and "serverRef is required" in err
    grant_doc = tmp_path / "grant.yaml"
    grant_doc.write_text("kind: MCPAccessGrant\nmetadata: {name: s-x}\nspec: {}\n")
    assert main(["session", "apply", "-f", str(grant_doc)], config=stack.cfg) == 2
    assert "expected kind MCPAgentSession" in capsys.readouterr().err
    assert "s-bad" not in names(stack.api("GET", "/api/runtime/sessions")["sessions"])


# --- policy inspect --------------------------------------------------------------------------


def test_policy_inspect_from_the_api(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "inspect", "server-a", "--json"], config=stack.cfg) == 0
    shown = out_json(capsys)
    assert shown["source"] == "configmap/mcp-servers/" + shown["source"].rsplit("/", 1)[1]
    assert shown["revision"] == shown["document"]["revision"] and shown["revision"]
    assert "json" not in shown["document"] and "source" not in shown["document"]
    # The document the API serves is the one rendered for the sidecar.
    assert shown["document"] == policy_doc(stack, "server-a")
    assert main(["policy", "inspect", TEAM_SERVER, "-N", TEAM_NS], config=stack.cfg) == 0
    text = capsys.readouterr().out
    assert f"server:         {TEAM_NS}/{TEAM_SERVER}" in text
    assert f"revision:       {policy_doc(stack, TEAM_SERVER, TEAM_NS)['revision']}" in text


def test_policy_inspect_falls_back_to_the_local_file(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    # The real API answers 404 for a server it does not know; a local file for it is shown instead.
    path = stack.cfg.policy_file("local-only")
    path.write_text(json.dumps({"schema_version": "v1", "revision": "sha256:local"}))
    try:
        assert main(["policy", "inspect", "local-only"], config=stack.cfg) == 0
        captured = capsys.readouterr()
        assert "sha256:local" in captured.out and f"source:         {path}" in captured.out
        assert "HTTP 404" in captured.err and "showing the local policy file" in captured.err
        # API unreachable: the same fallback.
        url = dead_url()
        assert main(["policy", "inspect", "local-only", "--json", "--api-url", url], config=stack.cfg) == 0
        assert out_json(capsys) == {"source": str(path), "revision": "sha256:local",
                                    "document": {"schema_version": "v1", "revision": "sha256:local"}}
        # Neither API nor file: a clear error that mentions both.
        assert main(["policy", "inspect", "server-z", "--api-url", url], config=stack.cfg) == 2
        err = capsys.readouterr().err
        assert url in err and "server-z.json" in err
        assert main(["policy", "inspect", "server-z"], config=stack.cfg) == 1
        assert "HTTP 404" in (err := capsys.readouterr().err) and "server-z.json" in err
        path.write_text("{not json")
        assert main(["policy", "inspect", "local-only"], config=stack.cfg) == 2
        assert "is not valid JSON" in capsys.readouterr().err
    finally:
        path.unlink()


# --- restart (through Temporal, the worker's local backend and the `sentinel up` loop) ------------


def test_restart_one_component(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    before = stack.pid("processor")
    assert main(["restart", "processor"], config=stack.cfg) == 0
    captured = capsys.readouterr()
    assert "restarting processor" in captured.err
    assert captured.out.startswith("restart requested: ") and '"success": true' in captured.out
    assert stack.pid("processor") != before and stack.sup.running["processor"].process.poll() is None


def test_restart_usage_and_unknown_component(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    url = dead_url()  # the usage errors are found before any call
    assert main(["restart", "--api-url", url], config=stack.cfg) == 2
    assert "name one component or pass --all" in (err := capsys.readouterr().err) and "cannot reach" not in err
    assert main(["restart", "api", "--all", "--api-url", url], config=stack.cfg) == 2
    pids = {n: stack.pid(n) for n in stack.sup.running}
    assert main(["restart", "nope"], config=stack.cfg) == 1
    err = capsys.readouterr().err
    assert "HTTP 400" in err and "unknown component: nope" in err
    assert {n: stack.pid(n) for n in stack.sup.running} == pids


def test_restart_all_then_the_stack_still_answers(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    before = {n: stack.pid(n) for n in stack.sup.running}
    assert main(["restart", "--all", "--json"], config=stack.cfg) == 0
    result = out_json(capsys)
    assert result["success"] is True and result["restarted"] == "all"
    restarted = sorted(o["component"] for o in result["outcomes"] if o["ok"])
    assert restarted == ["clickhouse", "flaky", "kube", "postgres", "processor"]
    assert sorted(result["skipped"]) == ["api", "temporal", "worker"]
    after = {n: stack.pid(n) for n in stack.sup.running}
    assert all(after[n] != before[n] for n in restarted)
    assert all(after[n] == before[n] for n in result["skipped"])
    # The restarted stores kept their data and the API reconnects to them.
    assert event_ids(stack, capsys, "--server", "server-a") == ["cli-event-1"]
    assert main(["grant", "list", "-N", TEAM_NS, "--json"], config=stack.cfg) == 0
    assert "g-crd" in names(out_json(capsys))


def test_a_slow_restart_outlasts_the_read_timeout(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    # The API holds a restart open until the component is healthy again; `--timeout` is for quick calls.
    if "flaky" not in stack.sup.running:
        stack.sup.start(stack.flaky())
    before = stack.pid("flaky")
    stack.delay_file.write_text("2.5")
    try:
        assert main(["restart", "flaky", "--timeout", "0.5"], config=stack.cfg) == 0, capsys.readouterr().err
    finally:
        stack.delay_file.unlink()
    assert '"success": true' in capsys.readouterr().out
    assert stack.pid("flaky") != before


def test_a_failed_restart_is_exit_1_naming_the_component(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    if "flaky" not in stack.sup.running:
        stack.sup.start(stack.flaky())
    stack.marker.write_text("the next start fails")
    try:
        assert main(["restart", "flaky"], config=stack.cfg) == 1
    finally:
        stack.marker.unlink()
    err = capsys.readouterr().err
    assert "HTTP 500" in err and "flaky" in err and "exited with code" in err
