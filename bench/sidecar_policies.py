"""The policy variants `bench:sidecar` runs (platform tokens, pins, quotas, approvals): each writes a policy file."""

from __future__ import annotations

import json
from pathlib import Path

from localstack.config import REPO_ROOT


def _with_approvals(source: Path, tmp: Path) -> Path:
    """`source` with alice's grant asking approval for `delete_document`: the benched `search` calls
    then pay the gateway's approval lookup (sidecar/approval.py) without being held."""
    import dataclasses

    from mcp_sentinel.policy import compute_revision, parse_document, to_pretty_json
    from mcp_sentinel.policy.document import ApprovalRule

    doc = parse_document(source.read_bytes())
    rule = ApprovalRule(tools=("delete_document",), ttl_seconds=900)
    grants = tuple(dataclasses.replace(g, approval=rule) if g.human_id == "alice" else g for g in doc.grants)
    doc = dataclasses.replace(doc, grants=grants, revision="")
    doc = dataclasses.replace(doc, revision=compute_revision(doc))
    out = tmp / "policy-approvals.json"
    out.write_text(to_pretty_json(doc))
    return out


def _platform_setup(tmp: Path) -> tuple[Path, Path, str]:
    """(policy file, JWKS file, token) for `--auth platform`."""
    import dataclasses

    from functions.api.agent_tokens import AgentTokenIssuer, generate_pem, load_key
    from mcp_sentinel.policy import AuthBlock, compute_revision, parse_document, to_pretty_json

    resource = "https://bench.example/server-a/mcp"
    issuer = AgentTokenIssuer("https://bench.example/api", (load_key("bench", generate_pem()),), ttl=3600)
    doc = parse_document((REPO_ROOT / "examples" / "policies" / "server-a.json").read_bytes())
    doc = dataclasses.replace(doc, auth=AuthBlock(mode="platform", resource=resource), revision="")
    doc = dataclasses.replace(doc, revision=compute_revision(doc))
    policy, jwks = tmp / "policy.json", tmp / "jwks.json"
    policy.write_text(to_pretty_json(doc))
    policy = _with_approvals(policy, tmp)
    jwks.write_text(json.dumps(issuer.jwks()))
    token, _exp = issuer.mint(human="alice", agent="workspace-agent", team="", session="sess-alice-a",
                              session_namespace="mcp-servers", server="mcp-servers/server-a", audience=resource)
    return policy, jwks, token


BENCH_TOOL = {"name": "search", "description": "Search documents.",
              "inputSchema": {"type": "object", "properties": {"query": {"type": "string"}}}}


def _pins_setup(tmp: Path, policy: Path) -> Path:
    """`policy` with `search` pinned to the bench upstream's definition (`--pins`)."""
    import dataclasses

    from mcp_sentinel.policy import compute_revision, parse_document, to_pretty_json
    from mcp_sentinel.policy.tool_digest import tool_digest

    doc = parse_document(policy.read_bytes())
    pinned = dataclasses.replace(doc.server, tool_pins={"search": tool_digest(BENCH_TOOL)})
    doc = dataclasses.replace(doc, server=pinned)
    doc = dataclasses.replace(doc, revision=compute_revision(doc))
    out = tmp / "policy-pinned.json"
    out.write_text(to_pretty_json(doc))
    return out


def _answer(raw: bytes) -> bytes | None:
    """The gateway's own listing (`--pins`): initialize and tools/list answers; None for a notification."""
    msg = json.loads(raw)
    if "id" not in msg:
        return None
    result: dict[str, object] = {"tools": [BENCH_TOOL]}
    if msg.get("method") == "initialize":
        result = {"protocolVersion": "2025-06-18", "capabilities": {"tools": {}}, "serverInfo": {"name": "bench"}}
    return json.dumps({"jsonrpc": "2.0", "id": msg["id"], "result": result}).encode()


def _with_quotas(policy: Path, tmp: Path) -> Path:
    """A copy of `policy` whose grants each carry a per-session and a per-human quota (high limits)."""
    import dataclasses

    from mcp_sentinel.policy import compute_revision, parse_document, to_pretty_json
    from mcp_sentinel.policy.document import Quota

    doc = parse_document(policy.read_bytes())
    quotas = (Quota(limit=1_000_000_000, window_seconds=3600, per="session"),
              Quota(limit=1_000_000_000, window_seconds=60, per="human", tool="search"))
    grants = tuple(dataclasses.replace(g, quotas=quotas) for g in doc.grants)
    doc = dataclasses.replace(doc, grants=grants, revision="")
    out = tmp / "policy-quotas.json"
    out.write_text(to_pretty_json(dataclasses.replace(doc, revision=compute_revision(doc))))
    return out
