"""Helpers shared by test modules (constants, builders, small servers); fixtures live in tests/fixtures/
(registered as plugins in tests/conftest.py) and area conftests. No test imports another test module
(tests/imports/test_suite_imports.py)."""
