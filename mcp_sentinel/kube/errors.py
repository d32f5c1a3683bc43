"""A small exception tree over Kubernetes API failures, so callers never parse ApiException."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class KubeError(Exception):
    """Any Kubernetes API failure; `status` is the HTTP code (0 when no response came back)."""

    def __init__(self, message: str, *, status: int = 0, reason: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.reason = reason


class NotFound(KubeError):
    """404: the object (or its namespace, or the resource type) does not exist."""


class Conflict(KubeError):
    """409: a stale resourceVersion (retry after re-reading)."""


class AlreadyExists(Conflict):
    """409 AlreadyExists: create of a name that is taken."""


class Invalid(KubeError):
    """422: the object failed validation; `causes` lists `{reason, message, field}` per field."""

    def __init__(
        self, message: str, *, causes: list[dict[str, str]], status: int = 422, reason: str = "Invalid"
    ) -> None:
        super().__init__(message, status=status, reason=reason)
        self.causes = causes


class Forbidden(KubeError):
    """401/403: the credentials are missing, wrong, or lack the RBAC permission."""


class Unavailable(KubeError):
    """No usable answer: connection refused, timeout, or a 5xx/429 from the API server."""


def from_api_exception(exc: Exception) -> KubeError:
    """Map a `kubernetes.client.ApiException` (or a transport error) onto the tree."""
    status = int(getattr(exc, "status", 0) or 0)
    body: Any = getattr(exc, "body", None)
    parsed: dict[str, Any] = {}
    if isinstance(body, (str, bytes)) and body:
        try:
            loaded = json.loads(body)
        except ValueError:
            loaded = None
        if isinstance(loaded, dict):
            parsed = loaded
    message = str(parsed.get("message") or getattr(exc, "reason", "") or exc)
    reason = str(parsed.get("reason") or "")
    if status == 0:
        return Unavailable(f"kubernetes API unreachable: {exc}")
    if status == 404:
        return NotFound(message, status=status, reason=reason)
    if status == 409:
        cls = AlreadyExists if reason == "AlreadyExists" else Conflict
        return cls(message, status=status, reason=reason)
    if status == 422:
        causes = list((parsed.get("details") or {}).get("causes") or [])
        return Invalid(message, causes=causes, status=status, reason=reason or "Invalid")
    if status in (401, 403):
        return Forbidden(message, status=status, reason=reason)
    if status == 429 or status >= 500:
        return Unavailable(message, status=status, reason=reason)
    return KubeError(message, status=status, reason=reason)


def translate(call: Callable[[], T]) -> T:
    """Run one client call, re-raising its failure as a `KubeError` subclass."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    try:
        return call()
    except ApiException as exc:
        raise from_api_exception(exc) from exc
    except (HTTPError, OSError) as exc:
        raise Unavailable(f"kubernetes API unreachable: {exc}") from exc
