"""What an MCPServer body is (the request models the OpenAPI document publishes) and how its
declared tools, prompts and resources become the CRD's spec."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, ConfigDict, Field

from functions.api.errors import bad_request
from functions.api.models import (
    NON_BLANK,
    Effect,
    Loose,
    NamespaceField,
    ServiceName,
    TeamIdField,
    Trust,
    TrustOrEmpty,
    integral,
)
from functions.api.services.scope import SIDE_EFFECTS, check_trust, compact
from mcp_sentinel.upstream_url import UPSTREAM_URL_PATTERN


class ToolIn(Loose):
    """One tool of the inventory."""

    name: EntryName
    description: str = Field(default="", max_length=2000)
    requiredTrust: TrustOrEmpty = ""
    sideEffect: Effect
    riskLevel: TrustOrEmpty = ""


# Prompts and resources take the CRD's schema (knative/crds/mcpserver.yaml) with its enums and
# defaults, published in the OpenAPI document; names are matched exactly by the gateway, so a name
# padded with whitespace (which no server lists) is refused rather than silently never matching.
# Bounds before the integral-float conversion, so the schema publishes them as minimum/maximum.
Port = Annotated[int, Field(ge=1, le=65535), BeforeValidator(integral)]
Replicas = Annotated[int, Field(ge=0, le=100), BeforeValidator(integral)]
# Empty for a remote server (gateway.upstreamURL): ServerIn requires one of the two (its schema says so).
Image = Annotated[str, Field(max_length=512, pattern=rf"^$|{NON_BLANK}")]
RequiredImage = Annotated[str, Field(min_length=1, max_length=512, pattern=NON_BLANK)]
EntryName = Annotated[str, Field(min_length=1, max_length=253, pattern=NON_BLANK)]
Labels = dict[Annotated[str, Field(min_length=1, max_length=317)], Annotated[str, Field(max_length=1024)]]


class PromptIn(Loose):
    """One prompt the server declares (`prompts/get` is decided like a tool call; `read` by default)."""

    name: EntryName
    description: str = Field(default="", max_length=2000)
    requiredTrust: Trust = "low"
    sideEffect: Effect = "read"
    riskLevel: Trust | None = None
    labels: Labels = Field(default_factory=dict, max_length=64)


class ResourceIn(PromptIn):
    """One resource the server declares: `uri` is exact or an RFC 6570 template (`resources/read`)."""

    uri: str = Field(default="", max_length=2048)


class ServerIn(Loose):
    """An MCPServer to create or update: an image, or `gateway.upstreamURL` for a server already running."""

    model_config = ConfigDict(json_schema_extra={"anyOf": [
        {"required": ["image"], "properties": {"image": {"minLength": 1, "pattern": NON_BLANK}}},
        {"required": ["gateway"], "properties": {"gateway": {
            "type": "object", "required": ["upstreamURL"],
            "properties": {"upstreamURL": {"type": "string", "pattern": UPSTREAM_URL_PATTERN}}}}},
    ]})

    name: ServiceName
    namespace: NamespaceField = ""
    # Empty: `public` in the shared catalog namespace, else `tenant`.
    scope: Literal["", "tenant", "org", "public"] = ""
    update: bool = False
    image: Image = ""
    imageTag: str = Field(default="", max_length=128)
    description: str = Field(default="", max_length=2000)
    teamID: TeamIdField = ""
    port: Port | None = None
    replicas: Replicas | None = None
    tools: list[ToolIn] = Field(default_factory=list, max_length=200)
    prompts: list[PromptIn] = Field(default_factory=list, max_length=200)
    mcpResources: list[ResourceIn] = Field(default_factory=list, max_length=200)
    auth: dict[str, Any] | None = None
    policy: dict[str, Any] | None = None
    session: dict[str, Any] | None = None
    gateway: dict[str, Any] | None = Field(default=None, json_schema_extra={
        "properties": {"upstreamURL": {"type": "string", "maxLength": 2048, "pattern": UPSTREAM_URL_PATTERN}}})
    analytics: dict[str, Any] | None = None


def spec_tools(items: list[ToolIn]) -> list[dict[str, Any]]:
    """Declared tools as the CRD stores them (400 on a duplicate name)."""
    out: list[dict[str, Any]] = []
    for i, t in enumerate(items):
        name = t.name.strip()
        if not name:
            raise bad_request(f"tools[{i}].name is required")
        if name in {o["name"] for o in out}:
            raise bad_request(f"tools[{i}].name duplicates {name}")
        effect = t.sideEffect.strip().lower()
        if effect not in SIDE_EFFECTS:
            raise bad_request(f"tools[{i}].sideEffect must be read, write, or destructive")
        risk = check_trust(t.riskLevel, f"tools[{i}].riskLevel")
        out.append(compact({
            "name": name, "description": t.description, "sideEffect": effect, "riskLevel": risk,
            "requiredTrust": check_trust(t.requiredTrust, f"tools[{i}].requiredTrust") or "low",
        }))
    return out


def spec_entries(key: str, items: list[PromptIn] | list[ResourceIn]) -> list[dict[str, Any]]:
    """Declared prompts or resources as the CRD stores them; names are a list-map key (400 on a duplicate)."""
    seen: set[str] = set()
    out: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        if item.name in seen:
            raise bad_request(f"{key}[{i}].name duplicates {item.name}")
        seen.add(item.name)
        out.append(compact(item.model_dump(exclude_none=True)))
    return out
