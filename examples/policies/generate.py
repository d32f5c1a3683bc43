"""Regenerate the example policies: `python -m examples.policies.generate` (writes server-a.json, server-b.json).

The seed isolation scenario: alice (agent `workspace-agent`) has a grant and a live session on
server-a; bob has the same on server-b. Sessions are required on both servers, so a caller
holding a session on one server gets 401 `session_not_found` on the other.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from mcp_sentinel.policy import (
    AuthBlock,
    Grant,
    PolicyBlock,
    PolicyDocument,
    ServerInfo,
    SessionBinding,
    SessionBlock,
    Tool,
    ToolRule,
    compute_revision,
    to_pretty_json,
)

HERE = Path(__file__).resolve().parent
NAMESPACE = "mcp-servers"
AGENT = "workspace-agent"
TOOLS = (
    Tool(name="list_documents", description="List document titles.", required_trust="low", side_effect="read"),
    Tool(name="read_document", description="Read one document.", required_trust="low", side_effect="read"),
    Tool(name="search", description="Search documents.", required_trust="low", side_effect="read"),
    Tool(name="summarize_workspace", description="Summarize with progress.", required_trust="low", side_effect="read"),
    Tool(name="create_document", description="Create a document.", required_trust="medium", side_effect="write"),
    Tool(name="update_document", description="Replace a document.", required_trust="medium", side_effect="write"),
    Tool(name="delete_document", description="Delete a document.", required_trust="high", side_effect="destructive"),
    Tool(
        name="archive_document",
        description="Archive after confirming.",
        required_trust="high",
        side_effect="destructive",
    ),
)
GRANTED = ("list_documents", "read_document", "search", "summarize_workspace", "create_document", "update_document")


def document(server: str, human: str, session: str) -> PolicyDocument:
    """One server's policy: `human` may read and write (not delete) through `session`."""
    doc = PolicyDocument(
        schema_version="v1",
        revision="",
        server=ServerInfo(name=server, namespace=NAMESPACE, cluster="local"),
        auth=AuthBlock(
            mode="header",
            human_id_header="X-MCP-Human-ID",
            agent_id_header="X-MCP-Agent-ID",
            team_id_header="X-MCP-Team-ID",
            session_id_header="X-MCP-Agent-Session",
        ),
        policy=PolicyBlock(mode="allow-list", default_decision="deny", enforce_on="call_tool", policy_version="v1"),
        session=SessionBlock(required=True, store="kubernetes", header_name="X-MCP-Agent-Session"),
        tools=TOOLS,
        grants=(
            Grant(
                name=f"{human}-{server}",
                namespace=NAMESPACE,
                human_id=human,
                agent_id=AGENT,
                max_trust="medium",
                allowed_side_effects=("read", "write"),
                policy_version="v1",
                tool_rules=tuple(ToolRule(name=t, decision="allow", required_trust="low") for t in GRANTED),
            ),
        ),
        sessions=(
            SessionBinding(
                name=session,
                namespace=NAMESPACE,
                human_id=human,
                agent_id=AGENT,
                consented_trust="medium",
                expires_at="2099-01-01T00:00:00Z",
            ),
        ),
    )
    return dataclasses.replace(doc, revision=compute_revision(doc))


POLICIES = {
    "server-a": document("server-a", "alice", "sess-alice-a"),
    "server-b": document("server-b", "bob", "sess-bob-b"),
}


def main() -> None:
    """Write the example policy files next to this module."""
    for name, doc in POLICIES.items():
        (HERE / f"{name}.json").write_text(to_pretty_json(doc))


if __name__ == "__main__":
    main()
