"""Periodic policy reconciliation: re-render every server's policy and report drift."""
