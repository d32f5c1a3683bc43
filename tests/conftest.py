"""Shared test configuration. Area-specific fixtures live in tests/fixtures/ plugins."""
