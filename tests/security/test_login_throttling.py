"""Login throttling an outsider cannot turn against someone else (issue 14, item 3).

The API's lockout backs off per (account, client address) and never locks for good; the UI's
limiter counts per client address. Whatever an attacker does from its own addresses, the owner
signing in from theirs is not throttled, and the attacker's own lock always ends. An IPv6 client
counts by its /64, so one host cannot dodge its own throttle by rotating addresses.
"""

from __future__ import annotations

import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st

from functions.ui.ratelimit import LoginLimiter
from functions.ui.settings import RateLimits
from mcp_sentinel.client_address import throttle_key
from mcp_sentinel.identity.lockout import MAX_LOCK_SECONDS, LoginLockout

VICTIM_ACCOUNT, VICTIM_ADDR = "owner@corp.example", "198.51.100.7"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


attacker_addr = st.one_of(
    st.ip_addresses(v=4).map(str).filter(lambda a: a != VICTIM_ADDR),
    st.ip_addresses(v=6).map(str),
)
attempt = st.tuples(st.sampled_from([VICTIM_ACCOUNT, "OWNER@corp.example", "other@corp.example"]), attacker_addr,
                    st.floats(min_value=0, max_value=30))


@settings(max_examples=150, deadline=None)
@given(st.lists(attempt, max_size=80))
def test_an_outsider_never_locks_the_owner_out(attempts: list[tuple[str, str, float]]) -> None:
    clock = Clock()
    api = LoginLockout(clock=clock)
    ui = LoginLimiter(RateLimits(), clock=clock)
    for account, addr, pause in attempts:
        clock.now += pause
        if api.retry_after(account, addr) == 0:
            api.failure(account, addr)
        if ui.attempt(addr) == 0:
            ui.failure(addr)
    assert api.retry_after(VICTIM_ACCOUNT, VICTIM_ADDR) == 0
    assert ui.attempt(VICTIM_ADDR) == 0


@settings(max_examples=50, deadline=None)
@given(st.integers(min_value=1, max_value=400), attacker_addr)
def test_the_lockout_backs_off_and_always_ends(failures: int, addr: str) -> None:
    clock = Clock()
    api = LoginLockout(clock=clock)
    for _ in range(failures):
        api.failure(VICTIM_ACCOUNT, addr)
        assert api.retry_after(VICTIM_ACCOUNT, addr) <= MAX_LOCK_SECONDS  # a backoff, never a hard lock
    clock.now += MAX_LOCK_SECONDS + 0.001
    assert api.retry_after(VICTIM_ACCOUNT, addr) == 0


def test_an_ipv6_host_cannot_dodge_its_own_throttle_by_rotating_addresses() -> None:
    clock = Clock()
    api = LoginLockout(clock=clock)
    net = ipaddress.IPv6Network("2001:db8:1:2::/64")
    hosts = [str(net[i * 7919 + 1]) for i in range(4)]
    for host in hosts[:3]:
        api.failure(VICTIM_ACCOUNT, host)
    assert api.retry_after(VICTIM_ACCOUNT, hosts[3]) > 0  # a fresh address in the same /64 is still locked
    assert api.retry_after(VICTIM_ACCOUNT, "2001:db8:1:3::1") == 0  # the next /64 is someone else
    assert throttle_key("::ffff:198.51.100.7") == "198.51.100.7" and throttle_key("198.51.100.7") == "198.51.100.7"
    assert throttle_key("unknown") == "unknown"
    ui = LoginLimiter(RateLimits(failure_threshold=3), clock=clock)
    for host in hosts[:3]:
        ui.failure(host)
    assert ui.attempt(hosts[3]) > 0
