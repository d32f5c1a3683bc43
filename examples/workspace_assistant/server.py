"""The "workspace assistant": a small MCP server with tools of every side-effect class.

Built with the official `mcp` SDK; in-memory state, so every start is a clean workspace.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from pydantic import BaseModel, Field

SEED = {
    "welcome": "Welcome to the workspace. Documents here are shared by the team.",
    "roadmap": "Q3: audit pipeline. Q4: policy UI and OAuth everywhere.",
    "runbook": "If ingest is down, sidecars spool audit events to disk and replay them later.",
}


@dataclass
class Workspace:
    """In-memory documents keyed by title."""

    docs: dict[str, str] = field(default_factory=lambda: dict(SEED))


class Confirmation(BaseModel):
    """What `archive_document` asks the user."""

    confirm: bool = Field(description="Archive the document?")


def create_server(workspace: Workspace | None = None, *, progress_delay: float = 0.05) -> MCPServer:
    """The workspace assistant MCP server (tools: read, write, destructive, streaming, elicitation)."""
    ws = workspace or Workspace()
    server = MCPServer("workspace-assistant", instructions="Read and edit the team's workspace documents.")

    @server.tool(description="List the titles of all documents (read).")
    def list_documents() -> list[str]:
        return sorted(ws.docs)

    @server.tool(description="Read one document by title (read).")
    def read_document(title: str) -> str:
        if title not in ws.docs:
            raise ValueError(f"no document titled {title!r}")
        return ws.docs[title]

    @server.tool(description="Titles of documents containing the query, case-insensitively (read).")
    def search(query: str) -> list[str]:
        q = query.lower()
        return sorted(t for t, body in ws.docs.items() if q in body.lower() or q in t.lower())

    @server.tool(description="Create a new document (write).")
    def create_document(title: str, body: str) -> str:
        if title in ws.docs:
            raise ValueError(f"a document titled {title!r} already exists")
        ws.docs[title] = body
        return f"created {title}"

    @server.tool(description="Replace a document's body (write).")
    def update_document(title: str, body: str) -> str:
        if title not in ws.docs:
            raise ValueError(f"no document titled {title!r}")
        ws.docs[title] = body
        return f"updated {title}"

    @server.tool(description="Delete a document (destructive).")
    def delete_document(title: str) -> str:
        if ws.docs.pop(title, None) is None:
            raise ValueError(f"no document titled {title!r}")
        return f"deleted {title}"

    @server.tool(description="Summarize every document, reporting progress per document (read, streams progress).")
    async def summarize_workspace(ctx: Context, steps: int = 0) -> str:
        titles = sorted(ws.docs)
        total = steps or len(titles)
        lines = []
        for i in range(total):
            title = titles[i % len(titles)] if titles else "(empty)"
            await ctx.report_progress(i + 1, total, f"summarized {title}")
            lines.append(f"{title}: {ws.docs.get(title, '')[:40]}")
            await asyncio.sleep(progress_delay)
        return "\n".join(lines)

    @server.tool(description="Archive (delete) a document after asking the user to confirm (destructive, elicits).")
    async def archive_document(title: str, ctx: Context) -> str:
        answer = await ctx.elicit(f"Archive {title!r}?", Confirmation)
        if answer.action != "accept" or not answer.data or not answer.data.confirm:
            return f"kept {title}"
        ws.docs.pop(title, None)
        return f"archived {title}"

    return server
