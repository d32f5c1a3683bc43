"""The policy package's single error type (stdlib only)."""

from __future__ import annotations


class PolicyError(ValueError):
    """A policy document could not be decoded, validated or rendered.

    The message is meant for operators: it names the offending field (for example
    `grants[3].tool_rules[0].decision "maybe" must be allow or deny`).
    """
