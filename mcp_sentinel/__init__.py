"""mcp-sentinel: governance and audit for MCP servers (shared domain package)."""

__version__ = "0.1.0"
