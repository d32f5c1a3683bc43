"""Reading settings from environment variables: the one set of parsers every component uses.

Every component's `settings.py` builds its frozen dataclass with these readers, so a variable
means the same thing everywhere: surrounding blanks are ignored, an empty value is the same as
an unset one (the default applies), and anything else that does not parse is a `SettingsError`
naming the variable. Booleans are strict on purpose: a typo such as `ture` in a security switch
must stop the process, never quietly read as false (or true).

Standard library only: the sidecar imports this module and its import graph stays free of
pydantic and friends (tests/sidecar/test_reload_and_imports.py).
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import TypeVar
from urllib.parse import urlsplit

__all__ = [
    "SettingsError", "base_url", "choice", "duration", "flag", "http_url", "integer", "items", "listen",
    "load_or_exit", "number", "parse_base_url", "parse_bool", "parse_duration", "parse_http_url", "parse_int",
    "parse_items", "parse_listen", "parse_number", "text",
]

T = TypeVar("T")

TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})

_INT_RE = re.compile(r"[+-]?\d+")
_DURATION_RE = re.compile(
    r"P(?:(?P<d>\d+(?:\.\d+)?)D)?(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?"
)


class SettingsError(ValueError):
    """A setting is present but unusable (the message names the variable); the process refuses to start."""


# --- pure parsers: (variable name, raw text) -> value, or SettingsError naming the variable ---


def parse_int(name: str, raw: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """A decimal integer within [minimum, maximum] (either bound optional)."""
    value_text = raw.strip()
    # int() alone would also take "1_000" and non-ASCII digits: settings are plain decimal.
    if not _INT_RE.fullmatch(value_text) or not value_text.isascii():
        raise SettingsError(f"{name} must be an integer, got {raw!r}")
    value = int(value_text)
    _check_bounds(name, value, minimum, maximum)
    return value


def parse_number(name: str, raw: str, *, minimum: float | None = None, maximum: float | None = None,
                 positive: bool = False) -> float:
    """A finite decimal number within [minimum, maximum]; `positive` also excludes zero."""
    try:
        value = float(raw.strip())
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None
    if not math.isfinite(value):  # float() takes "nan" and "inf": never a sensible timeout or size
        raise SettingsError(f"{name} must be a finite number, got {raw!r}")
    if positive and value <= 0:
        raise SettingsError(f"{name} must be positive, got {raw.strip()}")
    _check_bounds(name, value, minimum, maximum)
    return value


def parse_bool(name: str, raw: str) -> bool:
    """`1/true/yes/on` or `0/false/no/off` (any case); anything else is an error, never false."""
    word = raw.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise SettingsError(f"{name} must be true or false (1/0, yes/no, on/off), got {raw!r}")


def parse_duration(name: str, raw: str) -> float:
    """Seconds in an ISO-8601 duration such as `PT0.2S`, `PT1M30S` or `P1D` (Knative's `backoffDelay`)."""
    value = raw.strip().upper()
    m = _DURATION_RE.fullmatch(value)
    # The pattern also matches "P", "PT" and "P1DT" (every part optional): not durations.
    if not m or value in ("P", "PT") or value.endswith("T"):
        raise SettingsError(f"{name} must be an ISO-8601 duration (e.g. PT0.5S), got {raw!r}")
    parts = {k: float(v) for k, v in m.groupdict().items() if v}
    return parts.get("d", 0) * 86400 + parts.get("h", 0) * 3600 + parts.get("m", 0) * 60 + parts.get("s", 0)


def parse_items(raw: str, separator: str = ",") -> tuple[str, ...]:
    """A separated list; blanks around items and empty items are dropped."""
    return tuple(item for item in (part.strip() for part in raw.split(separator)) if item)


def parse_http_url(name: str, raw: str) -> str:
    """An absolute http(s) URL, returned stripped (otherwise as written)."""
    value = raw.strip()
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a port out of range or not a number
    except ValueError:
        raise SettingsError(f"{name} must be an absolute http(s) URL, got {raw!r}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SettingsError(f"{name} must be an absolute http(s) URL, got {raw!r}")
    return value


def parse_base_url(name: str, raw: str) -> str:
    """An http(s) URL that others are appended to: `scheme://host[:port][/path]`, no trailing slash.

    Query and fragment are dropped: they cannot survive having a path appended.
    """
    parts = urlsplit(parse_http_url(name, raw))
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


def parse_listen(name: str, raw: str) -> tuple[str, int]:
    """`host:port` (IPv6 hosts in brackets or bare, the port after the last colon) -> (host, port)."""
    host, sep, port = raw.strip().rpartition(":")
    if not sep or not host.strip("[]") or not port.isascii() or not port.isdigit() or not 0 < int(port) < 65536:
        raise SettingsError(f"{name} must be host:port, got {raw!r}")
    return host, int(port)


def _check_bounds(name: str, value: float, minimum: float | None, maximum: float | None) -> None:
    if minimum is not None and value < minimum:
        raise SettingsError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise SettingsError(f"{name} must be <= {maximum}, got {value}")


# --- readers: (environment, variable name, default) -> value; empty or unset means the default ---


def _raw(environ: Mapping[str, str], name: str) -> str:
    return environ.get(name, "").strip()


def text(environ: Mapping[str, str], name: str, default: str = "") -> str:
    """The stripped value, or `default` when unset or blank."""
    return _raw(environ, name) or default


def integer(environ: Mapping[str, str], name: str, default: int, *, minimum: int | None = None,
            maximum: int | None = None) -> int:
    """See `parse_int`; the default is not range-checked (it is the code's own choice)."""
    raw = _raw(environ, name)
    return parse_int(name, raw, minimum=minimum, maximum=maximum) if raw else default


def number(environ: Mapping[str, str], name: str, default: float, *, minimum: float | None = None,
           maximum: float | None = None, positive: bool = False) -> float:
    """See `parse_number`."""
    raw = _raw(environ, name)
    return parse_number(name, raw, minimum=minimum, maximum=maximum, positive=positive) if raw else default


def flag(environ: Mapping[str, str], name: str, default: bool = False) -> bool:
    """See `parse_bool`."""
    raw = _raw(environ, name)
    return parse_bool(name, raw) if raw else default


def choice(environ: Mapping[str, str], name: str, default: str, allowed: Iterable[str]) -> str:
    """One of `allowed` (compared lower-case)."""
    options = tuple(allowed)
    value = (_raw(environ, name) or default).lower()
    if value not in options:
        raise SettingsError(f"{name} must be one of {', '.join(options)}, got {value!r}")
    return value


def items(environ: Mapping[str, str], name: str, separator: str = ",") -> tuple[str, ...]:
    """See `parse_items`; unset is the empty tuple."""
    return parse_items(environ.get(name, ""), separator)


def http_url(environ: Mapping[str, str], name: str, default: str = "") -> str:
    """See `parse_http_url`; unset or blank gives `default` unchecked (often "" = feature off)."""
    raw = _raw(environ, name)
    return parse_http_url(name, raw) if raw else default


def base_url(environ: Mapping[str, str], name: str, default: str = "") -> str:
    """See `parse_base_url`; unset or blank gives `default` unchecked."""
    raw = _raw(environ, name)
    return parse_base_url(name, raw) if raw else default


def listen(environ: Mapping[str, str], name: str, default: tuple[str, int]) -> tuple[str, int]:
    """See `parse_listen`."""
    raw = _raw(environ, name)
    return parse_listen(name, raw) if raw else default


def duration(environ: Mapping[str, str], name: str, default: str) -> float:
    """See `parse_duration`; `default` is itself an ISO-8601 duration, as in Knative manifests."""
    return parse_duration(name, _raw(environ, name) or default)


def load_or_exit(component: str, load: Callable[[], T], *also: type[Exception]) -> T:
    """`load()`, or exit 2 with `<component>: <message>` on stderr when the settings are unusable.

    `also` names further exception types that mean bad configuration for this component (e.g. a
    key file that cannot be read); everything else still propagates with its traceback.
    """
    caught: tuple[type[Exception], ...] = (SettingsError, *also)
    try:
        return load()
    except caught as exc:
        print(f"{component}: {exc}", file=sys.stderr)  # noqa: T201 - logging may not be set up yet
        raise SystemExit(2) from None
