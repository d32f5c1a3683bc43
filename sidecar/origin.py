"""Origin and Host validation (MCP transport spec: servers MUST validate `Origin`; DNS-rebinding defence).

A page on `evil.example.com` whose name an attacker re-points at the gateway's address makes the
browser send `Host: evil.example.com` and `Origin: http://evil.example.com`; both are refused.

Entries (`ALLOWED_HOSTS`, `ALLOWED_ORIGINS`, comma-separated):
* hosts: `name` (no port, or the scheme default 80/443), `name:port`, `name:*` (any port); IPv6 as `[::1]`.
* origins: `scheme://name`, `scheme://name:port`, `scheme://name:*`.
* `*` alone allows any host (or origin): an explicit opt-out for a front that validates them itself.

Always allowed: the loopback names on any port (a browser page cannot make a foreign name resolve
to them without being refused by name here), and `EXTERNAL_BASE_URL`'s host and origin. A request
without `Origin` (every non-browser client) is checked on `Host` alone; a request without exactly
one `Host` is refused.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from sidecar.errors import OriginConfigError as OriginConfigError  # re-exported: raised here

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")
_DEFAULT_PORTS = {"http": "80", "https": "443"}


def _split_host(value: str) -> tuple[str, str] | None:
    """(`name`, `port`) of a Host value ("" port when absent); None when malformed."""
    value = value.strip().lower()
    if not value:
        return None
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        name, rest = value[: end + 1], value[end + 1 :]
        if rest and not rest.startswith(":"):
            return None
        port = rest[1:]
    else:
        name, sep, port = value.partition(":")
        if sep and not port:
            return None
        if ":" in port:
            return None
    if not name or any(c in name for c in "/?#@ \t\\"):
        return None
    if port and port != "*" and not port.isdigit():
        return None
    return name, port


@dataclass(frozen=True, slots=True)
class _Rule:
    scheme: str  # "" for host rules
    name: str
    port: str  # "" (default ports), "*", "=" (no port) or digits

    def matches(self, scheme: str, name: str, port: str) -> bool:
        if name != self.name or (self.scheme and scheme != self.scheme):
            return False
        if self.port == "*":
            return True
        if self.port == "=":  # exactly no port (a name known only with its scheme's default)
            return not port
        if not self.port:
            defaults = (_DEFAULT_PORTS.get(scheme, ""),) if scheme else ("80", "443")
            return port in ("", *defaults)
        return port == self.port


def _host_rule(entry: str) -> _Rule:
    parsed = _split_host(entry)
    if parsed is None:
        raise OriginConfigError(f"ALLOWED_HOSTS entry {entry!r} must look like name, name:port or name:*")
    return _Rule("", *parsed)


def _origin_parts(value: str) -> tuple[str, str, str] | None:
    scheme, sep, rest = value.strip().lower().partition("://")
    if not sep or scheme not in _DEFAULT_PORTS or not rest or "/" in rest:
        return None
    parsed = _split_host(rest)
    return None if parsed is None else (scheme, *parsed)


def _origin_rule(entry: str) -> _Rule:
    parts = _origin_parts(entry.rstrip("/"))
    if parts is None:
        raise OriginConfigError(
            f"ALLOWED_ORIGINS entry {entry!r} must look like https://name, https://name:port or http://name:*"
        )
    return _Rule(*parts)


def split_list(raw: str) -> tuple[str, ...]:
    """Comma-separated setting -> tuple of non-empty entries."""
    return tuple(e.strip() for e in raw.split(",") if e.strip())


class OriginGuard:
    """Decides whether a request's `Host` and `Origin` name this gateway."""

    def __init__(self, hosts: Iterable[str] = (), origins: Iterable[str] = (), external_base_url: str = "") -> None:
        hosts, origins = list(hosts), list(origins)
        self.any_host = "*" in hosts
        self.any_origin = "*" in origins
        host_rules = [_Rule("", name, "*") for name in LOOPBACK_NAMES]
        origin_rules = [_Rule(s, name, "*") for name in LOOPBACK_NAMES for s in ("http", "https")]
        if external_base_url:
            ext = urlsplit(external_base_url)
            parts = _origin_parts(f"{ext.scheme}://{ext.netloc}")
            if parts is None:
                raise OriginConfigError(f"EXTERNAL_BASE_URL {external_base_url!r} has no usable host")
            scheme, name, port = parts
            origin_rules.append(_Rule(scheme, name, port))
            host_rules.append(_Rule("", name, port or _DEFAULT_PORTS[scheme]))
            if not port:
                host_rules.append(_Rule("", name, "="))
        host_rules += [_host_rule(h) for h in hosts if h != "*"]
        origin_rules += [_origin_rule(o) for o in origins if o != "*"]
        self._hosts = tuple(host_rules)
        self._origins = tuple(origin_rules)
        # Hot path: clients send the same few Host values; remember verdicts (bounded, reset when full).
        self._host_cache: dict[str, bool] = {}

    def host_allowed(self, values: list[str]) -> bool:
        """True when exactly one `Host` header was sent and it names this gateway."""
        if len(values) != 1:
            return False
        value = values[0]
        cached = self._host_cache.get(value)
        if cached is None:
            if len(self._host_cache) >= 256:
                self._host_cache.clear()
            cached = self._host_cache[value] = self._host_ok(value)
        return cached

    def _host_ok(self, value: str) -> bool:
        parsed = _split_host(value)
        if parsed is None:
            return False
        if self.any_host:
            return True
        return any(r.matches("", parsed[0], parsed[1]) for r in self._hosts)

    def origin_allowed(self, values: list[str]) -> bool:
        """True without `Origin`; else exactly one, and one this gateway serves (`null` never is)."""
        if not values:
            return True
        if len(values) != 1:
            return False
        parts = _origin_parts(values[0])
        if parts is None:
            return False
        if self.any_origin:
            return True
        return any(r.matches(*parts) for r in self._origins)
