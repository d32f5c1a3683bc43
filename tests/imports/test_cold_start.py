"""Work the app factories no longer do at start-up, checked by what it produces (not by timing)."""

from __future__ import annotations

import argon2

from mcp_sentinel.identity.passwords import HashParams, PasswordHasher

CHEAP = HashParams(time_cost=1, memory_cost_kib=1024, parallelism=1)


def test_unknown_user_dummy_hash_has_the_real_parameters() -> None:
    # The timing equaliser is built without hashing; verification cost follows the PHC
    # parameters, so they must be exactly those of a real hash from the same hasher.
    for params in (CHEAP, HashParams()):
        hasher = PasswordHasher(params)
        real = argon2.extract_parameters(hasher.hash_sync("correct horse battery"))
        assert argon2.extract_parameters(hasher._dummy) == real


def test_unknown_user_never_verifies() -> None:
    hasher = PasswordHasher(CHEAP)
    stored = hasher.hash_sync("correct horse battery")
    assert hasher.verify_sync(stored, "correct horse battery")
    assert not hasher.verify_sync(stored, "wrong")
    for guess in ("", "correct horse battery", "sentinel-timing-equaliser"):
        assert not hasher.verify_sync(None, guess)
    assert PasswordHasher(CHEAP)._dummy != hasher._dummy  # random salt and digest per process
