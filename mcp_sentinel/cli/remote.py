"""Commands that talk to the API: events, restart, policy inspect, grants, sessions and servers."""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

from mcp_sentinel.cli.client import ApiClient, CliError
from mcp_sentinel.cli.output import emit_json, table
from mcp_sentinel.cli.plugin import CliPlugin

# Every filter /api/events applies (it ignores unknown names, so a flag missing there would match everything).
EVENT_FILTERS = ("source", "event_type", "server", "namespace", "team_id", "cluster", "human_id", "agent_id",
                 "session_id", "decision", "tool_name", "reason", "rpc_method", "subject_team_id", "trace_id",
                 "since", "until")
# The API holds a restart request open up to 60 s (its RESTART_WAIT_SECONDS) before answering
# 202 "pending"; a shorter client timeout would report a failure for a restart that is still running.
RESTART_TIMEOUT = 90.0
EVENT_COLUMNS = ("timestamp", "server", "decision", "tool_name", "human_id", "agent_id", "reason")


def _progress(args: argparse.Namespace, msg: str) -> None:
    # Progress goes to stderr so `--json` output stays machine-readable.
    if not args.json:
        print(msg, file=sys.stderr, flush=True)


def _flatten(event: dict[str, Any]) -> dict[str, Any]:
    payload = event.get("payload")
    if isinstance(payload, str):
        try:
            payload = json.loads(payload)
        except json.JSONDecodeError:
            payload = None
    merged = dict(payload) if isinstance(payload, dict) else {}
    merged.update({k: v for k, v in event.items() if v not in (None, "")})
    return merged


def cmd_events(args: argparse.Namespace, client: ApiClient) -> int:
    """Recent audit events, newest first."""
    if not 1 <= args.limit <= 1000:
        raise CliError("--limit must be between 1 and 1000", exit_code=2)
    params = {"limit": str(args.limit)}
    params.update({f: getattr(args, f) for f in EVENT_FILTERS if getattr(args, f)})
    data = client.request("GET", "/api/events", params=params)
    events = data.get("events") or []
    if args.json:
        emit_json(events)
    else:
        table([_flatten(e) for e in events], EVENT_COLUMNS, empty="no events")
    return 0


def cmd_restart(args: argparse.Namespace, client: ApiClient) -> int:
    """Restart one component, or all of them, through the API."""
    if bool(args.component) == bool(args.all):
        raise CliError("name one component or pass --all", exit_code=2)
    body: dict[str, Any] = {"all": True} if args.all else {"component": args.component}
    _progress(args, f"restarting {'all components' if args.all else args.component} ...")
    data = client.request("POST", "/api/runtime/actions/restart", body=body,
                          timeout=max(client.timeout, RESTART_TIMEOUT))
    if args.json:
        emit_json(data)
    else:
        print(f"restart requested: {json.dumps(data, sort_keys=True)}")
    return 0


def cmd_policy_inspect(args: argparse.Namespace, client: ApiClient, plugin: CliPlugin | None) -> int:
    """The rendered policy document and its revision (API first, then the local policy file)."""
    source: str
    try:
        doc = client.request("GET", "/api/runtime/policy", params={"namespace": args.namespace, "server": args.server})
        source = str(doc.get("source") or f"api {client.base_url}")
    except CliError as exc:
        path = plugin.policy_file(args.server, args.namespace) if plugin else None
        if path is None:
            raise
        if not path.is_file():
            raise CliError(f"{exc}; and no local policy file at {path}", exit_code=exc.exit_code) from exc
        _progress(args, f"note: {exc}; showing the local policy file")
        try:
            doc = json.loads(path.read_text())
        except json.JSONDecodeError as jexc:
            raise CliError(f"local policy file {path} is not valid JSON: {jexc}", exit_code=2) from jexc
        source = str(path)
    document = {k: v for k, v in doc.items() if k not in {"json", "yaml", "source"}}
    if args.json:
        emit_json({"source": source, "revision": document.get("revision"), "document": document})
        return 0
    print(f"server:         {args.namespace}/{args.server}")
    print(f"source:         {source}")
    print(f"schema_version: {document.get('schema_version', '-')}")
    print(f"revision:       {document.get('revision', '-')}")
    print(json.dumps(document, indent=2, sort_keys=True))
    return 0


def load_documents(path: str) -> list[dict[str, Any]]:
    """Objects from a YAML/JSON file (`-` = stdin): one document, several, or a list of them."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text()
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror or exc}", exit_code=2) from exc
    try:
        loaded = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise CliError(f"{path} is not valid YAML/JSON: {exc}", exit_code=2) from exc
    docs: list[Any] = []
    for item in loaded:
        docs.extend(item if isinstance(item, list) else [item])
    if not docs:
        raise CliError(f"{path} contains no documents", exit_code=2)
    bad = [i for i, d in enumerate(docs) if not isinstance(d, dict)]
    if bad:
        raise CliError(f"{path}: document {bad[0] + 1} is not an object", exit_code=2)
    return docs


def to_api_body(doc: dict[str, Any], kind: str) -> dict[str, Any]:
    """Accept the API body as-is, or a Kubernetes-style resource (metadata + spec) of `kind`."""
    if "spec" in doc or "metadata" in doc:
        if doc.get("kind") not in (None, kind):
            raise CliError(f"expected kind {kind}, got {doc.get('kind')!r}", exit_code=2)
        meta = doc.get("metadata") or {}
        body = dict(doc.get("spec") or {})
        body["name"] = meta.get("name", "")
        if meta.get("namespace"):
            body["namespace"] = meta["namespace"]
        return body
    return dict(doc)


def cmd_apply(args: argparse.Namespace, client: ApiClient, resource: str) -> int:
    """Create or update grants/sessions/servers from a file, one API call per document.

    Servers are sent with `update: true`, so applying a file again replaces them (as for the others).
    """
    kind = {"grants": "MCPAccessGrant", "sessions": "MCPAgentSession", "servers": "MCPServer"}[resource]
    bodies = [to_api_body(d, kind) for d in load_documents(args.file)]
    missing = [i + 1 for i, b in enumerate(bodies) if not b.get("name")]
    if missing:
        raise CliError(f"document {missing[0]} has no name", exit_code=2)
    results = []
    for i, body in enumerate(bodies, start=1):
        _progress(args, f"[{i}/{len(bodies)}] applying {resource[:-1]} {body.get('namespace', '-')}/{body['name']}")
        if resource == "servers":
            body.setdefault("update", True)
        results.append(client.request("POST", f"/api/runtime/{resource}", body=body))
    if args.json:
        emit_json(results)
    else:
        print(f"applied {len(results)} {resource if len(results) != 1 else resource[:-1]}")
    return 0


def cmd_list(args: argparse.Namespace, client: ApiClient, resource: str) -> int:
    """Grants, sessions or servers in a namespace."""
    params = {"namespace": args.namespace} if args.namespace else {}
    data = client.request("GET", f"/api/runtime/{resource}", params=params)
    items = data.get(resource) or []
    if args.json:
        emit_json(items)
        return 0
    rows = [{**i, "server": (i.get("serverRef") or {}).get("name"), "subject": i.get("subject")} for i in items]
    if resource == "grants":
        table(rows, ["namespace", "name", "server", "subject", "maxTrust", "allowedSideEffects", "disabled", "age"])
    elif resource == "servers":
        table([{**i, **_server_state(i)} for i in items], ["namespace", "name", "image", "ready", "url", "age"])
    else:
        table(rows, ["namespace", "name", "server", "subject", "consentedTrust", "revoked", "expiresAt", "age"])
    return 0


_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")


def _server_state(server: dict[str, Any]) -> dict[str, str]:
    """`ready` ("True (Serving)") and `url` from a server's status, as the reconcilers write it."""
    status = server.get("status") or {}
    ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    state = f"{ready.get('status')} ({ready.get('reason', '')})" if isinstance(ready, dict) else "-"
    return {"ready": state, "url": str(status.get("url") or "")}


def cmd_delete(args: argparse.Namespace, client: ApiClient, resource: str) -> int:
    """Delete one grant, session or server (a server's route and sidecar go with it)."""
    for label, value in (("namespace", args.namespace), ("name", args.name)):
        if not _NAME.fullmatch(value):
            raise CliError(f"{label} must be a Kubernetes name (lowercase letters, digits, '-', '.'), got {value!r}",
                           exit_code=2)
    client.request("DELETE", f"/api/runtime/{resource}/{args.namespace}/{args.name}")
    if args.json:
        emit_json({"deleted": resource[:-1], "namespace": args.namespace, "name": args.name})
    else:
        print(f"deleted {resource[:-1]} {args.namespace}/{args.name}")
    return 0

