"""Pydantic bases shared by the API's request and response models (the OpenAPI contract's vocabulary)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Path, Query
from pydantic import BaseModel, ConfigDict, Field

# Request bodies validate exactly what the schema says: no coercion ("1" for 1, 0 for false), and
# patterns under Python's `re`, the engine that generates and checks against the published schema.
BODY_CONFIG = ConfigDict(strict=True, regex_engine="python-re")


def integral(value: Any) -> Any:
    """For `BeforeValidator`: JSON Schema's integer is a number with no fraction, so 17.0 is one
    (strict mode would refuse it); "17" and true stay refused."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value



class Loose(BaseModel):
    """Unknown keys are ignored (clients send whole objects back)."""

    model_config = ConfigDict(extra="ignore", strict=True, regex_engine="python-re")


class Body(BaseModel):
    """A request body with the same strictness as `Loose` (unknown keys ignored too: pydantic's default)."""

    model_config = BODY_CONFIG


class ErrorBody(BaseModel):
    """The one error envelope every failure uses (`functions.api.errors`)."""

    error: str
    message: str


# The names Kubernetes accepts, published in the schema so a client knows them before asking
# (functions.api.services.scope.check_name enforces the same rules with a friendlier message).
DNS_LABEL = r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$"
DNS_SUBDOMAIN = r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$"
# An empty filter means "not given" on list routes.
DNS_LABEL_OR_EMPTY = r"^([a-z0-9]([a-z0-9-]*[a-z0-9])?)?$"

NamespacePath = Annotated[str, Path(pattern=DNS_LABEL, max_length=63, description="Kubernetes namespace")]
NamePath = Annotated[str, Path(pattern=DNS_SUBDOMAIN, max_length=253, description="Object name (DNS-1123)")]
NamespaceFilter = Annotated[
    str | None, Query(pattern=DNS_LABEL_OR_EMPTY, max_length=63, description="Only this namespace")
]
NamespaceQuery = Annotated[str, Query(pattern=DNS_LABEL, max_length=63, description="The server's namespace")]
ServerQuery = Annotated[str, Query(pattern=DNS_SUBDOMAIN, max_length=253, description="The MCPServer's name")]

# Body fields. Whitespace is spelled out, never written `\s`: that class differs between ECMA-262
# (JSON Schema), Python's `re` and Rust's/Go's regex (\x1c-\x1f, \x85, \ufeff), and the routes must
# accept exactly what a schema-driven client (or schemathesis) considers valid. The set is the union
# of ECMA's and Python's, so a value the schema admits also passes the CRDs' `\S` in any engine. No NUL
# anywhere: Postgres stores none. Routes use `strip_ws`/`has_ws` for the same set.
WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680" + "".join(map(chr, range(0x2000, 0x200B)))
    + "\u2028\u2029\u202f\u205f\u3000\ufeff"
)
_WS = r"\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
_VISIBLE = rf"[^{_WS}\x00]"
TRIMMED = rf"^({_VISIBLE}([^\x00]*{_VISIBLE})?)?$"
NON_BLANK = rf"^{_VISIBLE}([^\x00]*{_VISIBLE})?$"
NO_WHITESPACE = rf"^{_VISIBLE}*$"
NO_NUL = r"^[^\x00]*$"


def strip_ws(value: str) -> str:
    """`value` without surrounding whitespace (the schema's whitespace, see WHITESPACE)."""
    return value.strip(WHITESPACE)


def has_ws(value: str) -> bool:
    """Whether `value` contains whitespace (the schema's whitespace, see WHITESPACE)."""
    return any(c in WHITESPACE for c in value)

Name = Annotated[str, Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN)]
ServiceName = Annotated[str, Field(min_length=1, max_length=63, pattern=DNS_SUBDOMAIN)]
NamespaceField = Annotated[str, Field(max_length=63, pattern=DNS_LABEL_OR_EMPTY)]
TeamIdField = Annotated[str, Field(max_length=128, pattern=NO_WHITESPACE)]
Trust = Literal["low", "medium", "high"]
TrustOrEmpty = Literal["", "low", "medium", "high"]
Effect = Literal["read", "write", "destructive"]
# RFC 3339 date-time (with offset) or empty; checked again by the routes, which normalise it to UTC.
DateTimeOrEmpty = Annotated[
    str, Field(max_length=64, json_schema_extra={"anyOf": [{"maxLength": 0}, {"format": "date-time"}]})
]
# Local part, then a domain that is not an IP address literal (functions.api.services.accounts.validate_email).
_OCTET = "(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = rf"{_OCTET}(\.{_OCTET}){{3}}"
EMAIL_PATTERN = rf"^[{_WS}]*{_VISIBLE}+@(?!{_IPV4}[{_WS}]*$)[^{_WS}@:\[\]\x00]+[{_WS}]*$"
Email = Annotated[str, Field(max_length=254, json_schema_extra={"pattern": EMAIL_PATTERN})]


# How a pattern mismatch reads in the 400 (functions.api.errors): what the rule is, in words.
PATTERN_HINTS: dict[str, str] = {
    DNS_SUBDOMAIN: "must be a lowercase DNS-1123 name (a-z, 0-9, '-', '.', ≤ 253)",
    DNS_LABEL: "must be a lowercase DNS-1123 name (a-z, 0-9, '-', ≤ 63)",
    DNS_LABEL_OR_EMPTY: "must be a lowercase DNS-1123 name (a-z, 0-9, '-', ≤ 63)",
    TRIMMED: "must not start or end with whitespace",
    NON_BLANK: "must not start or end with whitespace",
    NO_WHITESPACE: "must not contain whitespace",
    NO_NUL: "must not contain NUL characters",
}
