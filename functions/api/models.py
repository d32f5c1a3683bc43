"""Pydantic bases shared by the API's request and response models (the OpenAPI contract's vocabulary)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Loose(BaseModel):
    """Unknown keys are ignored (clients send whole objects back)."""

    model_config = ConfigDict(extra="ignore")


class ErrorBody(BaseModel):
    """The one error envelope every failure uses (`functions.api.errors`)."""

    error: str
    message: str
