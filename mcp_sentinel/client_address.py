"""The real client address of a request that may have passed trusted proxies (stdlib only).

`X-Forwarded-For` is written by whoever sent the request, so it is honoured only when the
transport peer is a configured trusted proxy (`TRUSTED_PROXIES`, `UI_TRUSTED_PROXIES`). Each
proxy appends the address it saw, so walking the list from the right, the first hop that is not
itself a trusted proxy is the first address a trusted hop actually saw; anything further left is
client-supplied and ignored. Upstream took the left-most entry, which any client can forge to
dodge a lockout or to lock out someone else (§11 item 28).
"""

from __future__ import annotations

import ipaddress

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(name: str, raw: str | None) -> tuple[Network, ...]:
    """A comma list of IPs/CIDRs; raises ValueError naming the variable on a bad entry."""
    out: list[Network] = []
    for item in (p.strip() for p in (raw or "").split(",")):
        if not item:
            continue
        try:
            out.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"{name}: {item!r} is not an IP address or CIDR") from None
    return tuple(out)


def _ip(addr: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(addr)
    except ValueError:
        return None


def is_trusted(addr: str, proxies: tuple[Network, ...]) -> bool:
    """True when `addr` is an IP inside one of the trusted networks."""
    ip = _ip(addr)
    return ip is not None and any(ip in net for net in proxies)


def client_address(peer: str | None, forwarded_for: str | None, proxies: tuple[Network, ...]) -> str:
    """The transport peer, or for a trusted peer the right-most untrusted `X-Forwarded-For` hop.

    A hop that is not an IP address ends the walk: it cannot have been written by a trusted
    proxy, so the nearest address to its right is the best one known.
    """
    addr = peer or "unknown"
    if not forwarded_for or not is_trusted(addr, proxies):
        return addr
    for hop in reversed([h.strip() for h in forwarded_for.split(",") if h.strip()]):
        ip = _ip(hop)
        if ip is None:
            return addr
        if not any(ip in net for net in proxies):
            return str(ip)
        addr = str(ip)
    return addr


def throttle_key(addr: str) -> str:
    """The address a login throttle counts against: IPv4 as is, IPv6 by its /64.

    One IPv6 host usually holds a whole /64, so counting single addresses would let it dodge a
    per-address limit 2^64 times; a /64 is the smallest block assigned to one site.
    """
    ip = _ip(addr)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is None:
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return addr
