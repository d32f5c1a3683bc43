"""Start-up refusal of working defaults: placeholders, known local keys, short or guessable secrets.

Every component (api, ui, ingest, processor, sidecar, worker) calls `check_environment` before it
serves. A fresh install that still carries a template value (`CHANGE-ME`), one of the local stack's
published keys, or a short/low-entropy secret would otherwise *work*, and anyone who read the
README could use it (issue 14, "Placeholder secrets work"). Only an explicit local-development flag
(`SENTINEL_LOCAL_DEV=1`, set by the local stack and the test fixtures) lets such values through.

Stdlib only: the sidecar imports this module, and its import graph stays small.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from mcp_sentinel.env import SettingsError, flag, parse_bool

LOCAL_DEV_FLAG = "SENTINEL_LOCAL_DEV"
MIN_SECRET_LENGTH = 32
# A Shannon estimate over the characters of the value itself: 32 random base64url characters
# score about 150 bits, 32 random hex characters 93-130 (the floor leaves room for `openssl rand
# -hex 16`); repeated characters and short patterns score far less.
MIN_ESTIMATED_BITS = 80.0
MIN_BITS_PER_CHAR = 2.5

# Substrings no generated secret contains (case-insensitive, `-`/`_`/space ignored).
# Long markers only: a random secret must never trip them by chance.
_PLACEHOLDER_MARKERS = ("changeme", "replaceme", "placeholder", "yoursecret", "insertsecret", "secrethere")
# The local stack's published credentials (localstack/config.py and its parts; a test
# keeps this list in step). Kept here because product code never imports the local stand-ins.
KNOWN_LOCAL_VALUES = frozenset(
    {
        "sentinel-local-admin-key",
        "sentinel-local-ingest-key",
        "sentinel-local-jwt-secret-change-me-in-production",
        "sentinel-local-inventory-token",
        "sentinel-local-gateway-secret-not-for-production",
        "sentinel-local-processor-delivery-token",
        "test@123",
        "admin@123",
    }
)

Kind = Literal["secret", "secret_list", "key_ring", "url", "flag_off"]


class InsecureConfiguration(ValueError):
    """The environment carries a working default; the message names every offending variable."""


@dataclass(frozen=True)
class Spec:
    """One variable a component reads and how its value is judged.

    * `secret`: one secret (when set);
    * `secret_list`: comma-separated secrets, each optionally followed by `#binding` (ingest keys);
    * `key_ring`: `kid=secret,kid=secret` (`JWT_KEYS`);
    * `url`: a URL or DSN whose embedded password must not be a placeholder or local value;
    * `flag_off`: a development switch that must not be on outside local development.
    """

    name: str
    kind: Kind = "secret"


# Which variables each component is judged on (the same names its settings read).
COMPONENT_SPECS: dict[str, tuple[Spec, ...]] = {
    "api": (
        Spec("API_KEYS", "secret_list"),
        Spec("ADMIN_API_KEYS", "secret_list"),
        Spec("INGEST_API_KEYS", "secret_list"),
        Spec("JWT_SECRET"),
        Spec("JWT_KEYS", "key_ring"),
        Spec("PLATFORM_ADMIN_PASSWORD"),
        Spec("POSTGRES_DSN", "url"),
        Spec("DATABASE_URL", "url"),
        Spec("CLICKHOUSE_URL", "url"),
        # Verifies the gateways' credentials when they ask for approvals (routes/approvals.py).
        Spec("INGEST_GATEWAY_SECRET", "secret_list"),
        # Seeds test@mcpruntime.org / test@123 and admin@mcpruntime.org / admin@123.
        Spec("PLATFORM_DEV_LOGIN_ENABLED", "flag_off"),
    ),
    "ui": (
        Spec("ADMIN_API_KEYS", "secret_list"),
        Spec("UI_SESSION_SECRET"),
    ),
    "ingest": (
        Spec("INGEST_API_KEYS", "secret_list"),
        Spec("API_KEYS", "secret_list"),
        Spec("INGEST_GATEWAY_SECRET", "secret_list"),
        Spec("INGEST_ALLOW_UNAUTHENTICATED", "flag_off"),
        Spec("INGEST_ALLOW_UNBOUND_KEYS", "flag_off"),
    ),
    "processor": (
        Spec("CLICKHOUSE_URL", "url"),
        Spec("PROCESSOR_DELIVERY_TOKEN"),
        Spec("PROCESSOR_ALLOW_UNAUTHENTICATED", "flag_off"),
    ),
    "sidecar": (
        Spec("ANALYTICS_API_KEY"),
    ),
    "worker": (
        Spec("POSTGRES_DSN", "url"),
        Spec("CLICKHOUSE_URL", "url"),
    ),
}


def local_dev(environ: Mapping[str, str]) -> bool:
    """True when the explicit local-development flag is set (`SENTINEL_LOCAL_DEV=1`/true; a typo is an error)."""
    return flag(environ, LOCAL_DEV_FLAG)


def _normalised(value: str) -> str:
    return re.sub(r"[\s_\-.]", "", value.lower())


def _is_placeholder(value: str) -> bool:
    flat = _normalised(value)
    return any(marker in flat for marker in _PLACEHOLDER_MARKERS) or value.strip().startswith(("<", "${"))


def estimated_bits(value: str) -> float:
    """Shannon entropy of the value's own characters times its length (a guessability estimate)."""
    if not value:
        return 0.0
    counts = Counter(value)
    n = len(value)
    per_char = -sum(c / n * math.log2(c / n) for c in counts.values())
    return per_char * n


def _repeats(value: str) -> bool:
    # "abcabcabc...": a short period repeated is not random, whatever its character statistics.
    n = len(value)
    return any(n % p == 0 and value == value[:p] * (n // p) for p in range(1, n // 2 + 1))


def secret_problem(value: str) -> str | None:
    """Why `value` is not acceptable as a production secret, or None when it is."""
    if _is_placeholder(value):
        return "is a placeholder"
    if value in KNOWN_LOCAL_VALUES or value.lower() in KNOWN_LOCAL_VALUES:
        return "is a published local-stack value"
    if len(value) < MIN_SECRET_LENGTH:
        return f"is shorter than {MIN_SECRET_LENGTH} characters"
    bits = estimated_bits(value)
    if _repeats(value) or bits < MIN_ESTIMATED_BITS or bits / len(value) < MIN_BITS_PER_CHAR:
        return "has too little entropy (use a random value, e.g. `python -m mcp_sentinel.secrets_gen`)"
    return None


def _url_password(value: str) -> str | None:
    # URL form scheme://user:password@host, or libpq key=value form password=...
    m = re.match(r"^[a-z][a-z0-9+.-]*://[^:/@]*:([^@]*)@", value.strip(), re.IGNORECASE)
    if m:
        return m.group(1)
    m = re.search(r"(?:^|\s)password\s*=\s*(\S+)", value)
    return m.group(1).strip("'\"") if m else None


def _problems_for(spec: Spec, raw: str) -> list[str]:
    value = raw.strip()
    if not value:
        return []
    name = spec.name
    if spec.kind == "flag_off":
        try:
            on = parse_bool(name, value)
        except SettingsError as exc:
            return [str(exc)]
        return [f"{name} is a local-development switch and must be off"] if on else []
    if spec.kind == "url":
        if _is_placeholder(value):
            return [f"{name} contains a placeholder"]
        password = _url_password(value)
        if password and (password in KNOWN_LOCAL_VALUES or _is_placeholder(password)):
            return [f"{name} carries a placeholder or local password"]
        return []
    if spec.kind == "secret":
        problem = secret_problem(value)
        return [f"{name} {problem}"] if problem else []
    out: list[str] = []
    for i, item in enumerate(p.strip() for p in value.split(",")):
        if not item:
            continue
        if spec.kind == "key_ring":
            kid, sep, secret = item.partition("=")
            label, candidate = f"{name} key {kid.strip()!r}", secret.strip() if sep else item
        else:
            label, candidate = f"{name} entry {i + 1}", item.partition("#")[0].strip()
        problem = secret_problem(candidate)
        if problem:
            out.append(f"{label} {problem}")
    return out


def problems(environ: Mapping[str, str], specs: Iterable[Spec]) -> list[str]:
    """Every finding for these variables (never the values themselves: logs must not carry them)."""
    out: list[str] = []
    for spec in specs:
        out.extend(_problems_for(spec, environ.get(spec.name, "")))
    return out


def check_environment(environ: Mapping[str, str], component: str) -> list[str]:
    """Raise InsecureConfiguration naming every bad variable of `component`, unless local dev is on.

    Returns the findings that were waived by the local-development flag (for a start-up warning).
    """
    found = problems(environ, COMPONENT_SPECS[component])
    if not found:
        return []
    if local_dev(environ):
        return found
    raise InsecureConfiguration(
        f"{component} refuses to start with working defaults: " + "; ".join(found)
        + f" (generate real secrets with `python -m mcp_sentinel.secrets_gen`, or set {LOCAL_DEV_FLAG}=1"
        " for local development only)"
    )


def enforce(environ: Mapping[str, str], component: str) -> None:
    """Process start-up: exit 2 with the findings on stderr; log waived ones under the dev flag."""
    import logging
    import sys

    try:
        waived = check_environment(environ, component)
    except (InsecureConfiguration, SettingsError) as exc:
        print(f"{component}: {exc}", file=sys.stderr)  # noqa: T201 - fatal configuration error
        raise SystemExit(2) from None
    if waived:
        logging.getLogger(component).warning(
            "%s=1: starting with local-development secrets (%s)", LOCAL_DEV_FLAG, "; ".join(waived)
        )
