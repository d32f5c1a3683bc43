"""Agent-session expiry: one durable timer per MCPAgentSession, steered by signals."""
