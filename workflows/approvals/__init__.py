"""ApprovalWorkflow: one durable approval request per (caller, server, tool, arguments) digest (issue 18)."""
