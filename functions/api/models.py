"""Pydantic bases shared by the API's request and response models (the OpenAPI contract's vocabulary)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query
from pydantic import BaseModel, ConfigDict


class Loose(BaseModel):
    """Unknown keys are ignored (clients send whole objects back)."""

    model_config = ConfigDict(extra="ignore")


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
